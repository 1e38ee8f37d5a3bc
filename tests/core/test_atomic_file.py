import os
import stat

import pytest

from robustlearn.atomic_file import atomic_path


def test_the_file_appears_whole_when_the_block_succeeds(tmp_path):
    target = tmp_path / "new" / "model.bin"
    with atomic_path(target) as tmp:
        assert os.path.dirname(tmp) == str(target.parent) and tmp.endswith(".part")
        with open(tmp, "wb") as fh:
            fh.write(b"abc")
        assert not target.exists()
    assert target.read_bytes() == b"abc"
    assert os.listdir(target.parent) == ["model.bin"]


def test_a_failure_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        with open(tmp, "w") as fh:
            fh.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.json"]


@pytest.mark.skipif(os.name != "posix", reason="permission bits")
def test_the_file_gets_the_umask_permissions_of_any_new_file(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "default"):
            pass
        (tmp_path / "plain").touch()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "default").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o640
