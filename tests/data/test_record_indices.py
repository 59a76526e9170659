"""ssvbench.data.record_indices: a training subset as a file named by its hash."""

import numpy as np
import pytest

from ssvbench.data import record_indices


def test_written_indices_read_back_and_are_checked(tmp_path):
  indices = np.array([5, 1, 9, 2])
  entry = record_indices.write(tmp_path, indices)
  assert entry == record_indices.reference(indices)  # The config entry is known before writing.
  assert entry["count"] == 4 and entry["file"] == f"record_indices/{entry['sha256'][:16]}.npy"
  np.testing.assert_array_equal(record_indices.read(tmp_path, entry), indices)
  assert record_indices.reference([1, 5, 9, 2])["sha256"] != entry["sha256"]  # Order counts.
  np.save(tmp_path / entry["file"], np.array([5, 1, 9, 3]))
  with pytest.raises(ValueError, match="does not match the sha256"):
    record_indices.read(tmp_path, entry)
  with pytest.raises(FileNotFoundError, match="record indices this run's config names"):
    record_indices.read(tmp_path / "elsewhere", entry)


def test_none_and_the_former_plain_list_still_read():
  assert record_indices.read(None, None) is None
  np.testing.assert_array_equal(record_indices.read(None, [3, 4]), [3, 4])
