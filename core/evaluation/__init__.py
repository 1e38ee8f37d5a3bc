"""Robustness evaluation: worst-case reports over attacks and epsilons."""
