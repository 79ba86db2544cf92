"""Checksummed torch files: any changed byte is refused, torch still reads them, a full disk names the file and
leaves the previous copy."""

import errno
import zipfile

import pytest
import torch

from tam.errors import UserError
from tam.verified import checksum_status, load_verified, save_verified


@pytest.fixture
def saved(tmp_path):
    state = {"weights": torch.arange(2000, dtype=torch.float32), "epoch": 3, "names": ["a", "b"]}
    return save_verified(state, tmp_path / "state.pt"), state


def test_round_trip_and_plain_torch_load(saved):
    path, state = saved
    assert checksum_status(path) is True
    loaded = load_verified(path, what="checkpoint")
    assert torch.equal(loaded["weights"], state["weights"]) and loaded["names"] == ["a", "b"]
    assert torch.equal(torch.load(path, weights_only=True, mmap=True)["weights"], state["weights"])
    assert zipfile.ZipFile(path).comment.startswith(b"tam-sha256:")


def test_every_flipped_byte_of_the_payload_is_refused(saved, tmp_path):
    path, _ = saved
    good = path.read_bytes()
    payload = len(good) - len(zipfile.ZipFile(path).comment)  # everything torch wrote
    damaged = tmp_path / "damaged.pt"
    for position in range(0, payload, max(1, payload // 97)):
        data = bytearray(good)
        data[position] ^= 0x01
        damaged.write_bytes(bytes(data))
        with pytest.raises(UserError) as error:
            load_verified(damaged, what="checkpoint")
        assert str(damaged) in str(error.value), position
    assert path.read_bytes() == good


def test_truncated_and_unverified_files(saved, tmp_path):
    path, _ = saved
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(UserError, match="cut.pt"):
        load_verified(cut, what="checkpoint")
    plain = tmp_path / "plain.pt"
    torch.save({"x": torch.ones(2)}, plain)
    with pytest.raises(UserError, match="carries no tam checksum"):
        load_verified(plain, what="checkpoint")
    noted = []
    assert load_verified(plain, what="checkpoint", on_unverified=lambda: noted.append(1))["x"].sum() == 2
    assert noted == [1]


def test_a_full_disk_names_the_file_and_keeps_the_previous_copy(saved, monkeypatch):
    path, state = saved
    before = path.read_bytes()

    def no_space(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("tam.verified._HashingWriter.write", no_space)
    with pytest.raises(OSError) as error:
        save_verified({"weights": torch.zeros(10)}, path)
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(path)
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["state.pt"]
