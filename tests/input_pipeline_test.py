"""landmark_ssl.input_pipeline on a small Blocks build (150 images per split)."""

import math

import ml_collections
import numpy as np
import pytest

from landmark_ssl import build_data, input_pipeline as ip
from landmark_ssl import rundir

N = 150  # images per split of blocks/small
CLASSES = 15


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """An empty TFDS data dir; the first test that opens blocks/small builds it."""
  return str(tmp_path_factory.mktemp("tfds"))


def _config(data_dir, **overrides):
  cfg = ml_collections.ConfigDict(dict(
      name="blocks/small", data_dir=data_dir, manual_dir=None,
      labeled_fraction=0.2, labeled_share=0.25, batch_size=20,
      eval_batch_size=40, train_split="train", read_threads=2,
      prefetch_batches=2))
  cfg.update(overrides)
  return cfg


@pytest.fixture(scope="session")
def source(data_dir):
  ip.get_dataset_info(_config(data_dir))  # builds it if no test did yet
  builder = build_data.make_builder("blocks/small", data_dir)
  return {split: builder.as_data_source(split=split)
          for split in ("train", "validation", "test")}


def _labels(source, indices):
  return np.array([source[int(i)]["label"] for i in indices])


def test_info_builds_the_missing_synthetic_dataset(tmp_path, caplog):
  builder = build_data.make_builder("shapes/small", str(tmp_path))
  assert not builder.is_prepared()
  # At INFO on absl's logger too: another test may have lowered absl's
  # verbosity (logging.set_verbosity) in this process.
  with caplog.at_level("INFO"), caplog.at_level("INFO", logger="absl"):
    info = ip.get_dataset_info(_config(str(tmp_path), name="shapes/small"))
  assert "building it now" in caplog.text
  assert builder.is_prepared()
  assert info == ip.DatasetInfo(
      name="shapes/small", image_shape=(60, 60, 1), num_landmarks=2,
      classes={"label": 2},
      split_sizes={"train": N, "validation": N, "test": N})


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.2, 0.5, 1.0])
def test_labeled_subset_is_exact_sorted_and_class_balanced(data_dir, source,
                                                           fraction):
  cfg = _config(data_dir, labeled_fraction=fraction)
  seed = int(np.random.default_rng().integers(1000))
  chosen = ip.select_labeled(cfg, seed)
  assert len(chosen) == max(1, round(fraction * N))
  np.testing.assert_array_equal(chosen, np.unique(chosen))
  assert chosen.min() >= 0 and chosen.max() < N
  counts = np.bincount(_labels(source["train"], chosen), minlength=CLASSES)
  assert counts.max() - counts.min() <= 1
  np.testing.assert_array_equal(chosen, ip.select_labeled(cfg, seed))
  if fraction < 1:
    assert not np.array_equal(chosen, ip.select_labeled(cfg, seed + 1))


def test_stratified_choice_known_allocation():
  rng = np.random.default_rng()
  # Two class features; joint strata of sizes 50, 30, 20 in shuffled order.
  strata = np.array([[0, 1]] * 50 + [[1, 0]] * 30 + [[1, 1]] * 20)
  strata = strata[rng.permutation(100)]
  chosen = ip.stratified_choice(strata, 10, rng)
  keys = [tuple(k) for k in strata[chosen]]
  assert [keys.count(k) for k in [(0, 1), (1, 0), (1, 1)]] == [5, 3, 2]
  # Remainders: 7 of (50, 30, 20) -> quotas 3.5, 2.1, 1.4 -> 4, 2, 1.
  chosen = ip.stratified_choice(strata, 7, rng)
  keys = [tuple(k) for k in strata[chosen]]
  assert [keys.count(k) for k in [(0, 1), (1, 0), (1, 1)]] == [4, 2, 1]


def test_save_load_and_mismatch(data_dir, tmp_path):
  cfg = _config(data_dir)
  assert ip.load_labeled(tmp_path) is None
  first = ip.labeled_subset(cfg, 3, tmp_path)
  assert (tmp_path / rundir.LABEL_SUBSET).exists()
  np.testing.assert_array_equal(ip.load_labeled(tmp_path), first)
  np.testing.assert_array_equal(ip.labeled_subset(cfg, 3, tmp_path), first)
  with pytest.raises(ValueError, match="seed=3.*seed=4"):
    ip.labeled_subset(cfg, 4, tmp_path)
  with pytest.raises(ValueError, match="labeled_fraction"):
    ip.labeled_subset(_config(data_dir, labeled_fraction=0.5), 3, tmp_path)
  # Cut short: named, with both fixes; deleting it draws the same subset.
  path = tmp_path / rundir.LABEL_SUBSET
  path.write_text(path.read_text()[:20])
  with pytest.raises(rundir.CorruptFileError) as info:
    ip.labeled_subset(cfg, 3, tmp_path)
  assert str(info.value).startswith(f"{path} is not a label subset file")
  assert "restore it from a copy" in str(info.value)
  path.unlink()
  np.testing.assert_array_equal(ip.labeled_subset(cfg, 3, tmp_path), first)


@pytest.mark.parametrize("batch,fraction,share,expected", [
    (20, 0.2, 0.25, 5), (20, 0.2, 0.0, 4), (64, 0.01, 0.0, 1),
    (64, 0.01, 0.25, 16), (64, 0.5, 0.25, 32), (20, 1.0, 0.25, 20),
    (20, 0.9, 1.0, 20)])
def test_labeled_rows_per_batch(batch, fraction, share, expected):
  assert ip.labeled_rows_per_batch(batch, fraction, share) == expected
  rows = ip.labeled_row_mask(batch, expected)
  assert rows.sum() == expected
  if 0 < expected < batch:  # spread: any half of the batch holds about half
    assert abs(rows[: batch // 2].sum() - expected / 2) <= 1


def test_masks_share_and_passes(data_dir, source):
  cfg = _config(data_dir)  # 30 labelled, 5 per batch; 120 unlabelled, 15
  seed = int(np.random.default_rng().integers(1000))
  labeled = ip.select_labeled(cfg, seed)
  loader = ip.TrainLoader(cfg, seed, labeled, 0, 1)
  assert loader.steps_per_epoch == math.ceil(N / 20)
  assert loader.labeled_per_batch == 5
  lab_seen, unl_seen = [], []
  for step in range(24):  # 4 passes of the labelled pool, 3 of the other
    b = loader.get_batch(step)
    assert b["image"].shape == (20, 60, 60, 1) and b["image"].dtype == np.float32
    assert 0.0 <= b["image"].min() and b["image"].max() <= 1.0
    assert b["labels"]["label"].dtype == np.int32
    np.testing.assert_array_equal(b["mask"], np.ones(20))
    np.testing.assert_array_equal(b["has_landmarks"],
                                  np.isin(b["index"], labeled))
    assert b["has_landmarks"].sum() == 5
    lab_seen.append(b["index"][b["has_landmarks"] == 1])
    unl_seen.append(b["index"][b["has_landmarks"] == 0])
  lab_seen = np.concatenate(lab_seen).reshape(4, 30)
  unl_seen = np.concatenate(unl_seen).reshape(3, 120)
  for seen, pool in [(lab_seen, labeled),
                     (unl_seen, np.setdiff1d(np.arange(N), labeled))]:
    for one_pass in seen:  # each pass visits its pool exactly once...
      np.testing.assert_array_equal(np.sort(one_pass), pool)
    assert not np.array_equal(seen[0], seen[1])  # ...in a new order
  # Rows carry the stored examples.
  b = loader.get_batch(5)
  for r in np.random.default_rng().choice(20, 3, replace=False):
    ex = source["train"][int(b["index"][r])]
    np.testing.assert_allclose(b["image"][r], ex["image"] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(b["landmarks"][r], ex["landmarks"])
    assert b["labels"]["label"][r] == ex["label"]


def test_all_labelled_when_fraction_is_one(data_dir):
  cfg = _config(data_dir, labeled_fraction=1.0)
  loader = ip.TrainLoader(cfg, 0, ip.select_labeled(cfg, 0), 0, 1)
  seen = np.concatenate([loader.get_batch(s)["index"] for s in range(15)])
  assert loader.get_batch(3)["has_landmarks"].min() == 1.0
  np.testing.assert_array_equal(np.sort(seen[:N]), np.arange(N))


def test_determinism_and_resume(data_dir):
  cfg = _config(data_dir, labeled_fraction=0.1)
  labeled = ip.select_labeled(cfg, 7)
  a = ip.TrainLoader(cfg, 7, labeled, 0, 1)
  b = ip.TrainLoader(cfg, 7, labeled, 0, 1)
  for step in [0, 3, 11, 40]:
    ba, bb = a.get_batch(step), b.get_batch(step)
    for key in ("index", "image", "landmarks", "has_landmarks"):
      np.testing.assert_array_equal(ba[key], bb[key])
  start = 9
  it = b.iterate(start)
  for i in range(6):
    got = next(it)
    want = a.get_batch(start + i)
    np.testing.assert_array_equal(got["index"], want["index"])
    np.testing.assert_array_equal(got["image"], want["image"])
  it.close()
  other = ip.TrainLoader(cfg, 8, labeled, 0, 1)
  assert not np.array_equal(other.get_batch(0)["index"], a.get_batch(0)["index"])


def test_process_slices_concatenate_to_the_global_batch(data_dir):
  cfg = _config(data_dir)
  labeled = ip.select_labeled(cfg, 1)
  whole = ip.TrainLoader(cfg, 1, labeled, 0, 1)
  parts = [ip.TrainLoader(cfg, 1, labeled, p, 4) for p in range(4)]
  assert all(p.local_batch_size == 5 for p in parts)
  for step in [0, 7]:
    want = whole.get_batch(step)
    got = [p.get_batch(step) for p in parts]
    for key in ("index", "has_landmarks", "landmarks", "image"):
      np.testing.assert_array_equal(np.concatenate([g[key] for g in got]),
                                    want[key])


@pytest.mark.parametrize("count", [1, 4])
def test_eval_visits_every_example_once(data_dir, source, count):
  cfg = _config(data_dir)
  per_process = [list(ip.eval_batches(cfg, "validation", p, count))
                 for p in range(count)]
  assert len({len(b) for b in per_process}) == 1
  assert len(per_process[0]) == math.ceil(N / 40)
  real, pad = [], 0
  for batches in per_process:
    for b in batches:
      assert b["image"].shape == (40 // count, 60, 60, 1)
      real.append(b["index"][b["mask"] == 1])
      pad += int((b["mask"] == 0).sum())
      np.testing.assert_array_equal(b["has_landmarks"], 1.0)
  np.testing.assert_array_equal(np.sort(np.concatenate(real)), np.arange(N))
  assert pad == math.ceil(N / 40) * 40 - N
  last = per_process[-1][-1]
  r = int(np.flatnonzero(last["mask"])[-1]) if last["mask"].any() else None
  if r is not None:
    ex = source["validation"][int(last["index"][r])]
    np.testing.assert_array_equal(last["landmarks"][r], ex["landmarks"])


def test_missing_real_dataset_says_how_to_build_it(tmp_path, monkeypatch):
  # Any non-synthetic builder that is not prepared: the 300W-sized noise one.
  monkeypatch.setitem(build_data.DATASETS, "noise",
                      ("landmark_ssl.bench.noise_builder", "Bench300w"))
  with pytest.raises(FileNotFoundError,
                     match="build_data --dataset=noise --data_dir=.*--manual_dir"):
    ip.get_dataset_info(_config(str(tmp_path), name="noise"))
  assert not list(tmp_path.iterdir())  # nothing was built


def test_bad_inputs_name_the_setting_and_the_fix(data_dir):
  with pytest.raises(ValueError, match="'blokcs'.*blocks.*the300w"):
    ip.get_dataset_info(_config(data_dir, name="blokcs"))
  with pytest.raises(ValueError, match="no builder config 'tiny'.*small"):
    ip.get_dataset_info(_config(data_dir, name="blocks/tiny"))
  for bad in (0.0, -0.1, 1.5):
    with pytest.raises(ValueError, match=r"labeled_fraction.*\(0, 1\]"):
      ip.select_labeled(_config(data_dir, labeled_fraction=bad), 0)
  with pytest.raises(ValueError, match="labeled_share"):
    ip.TrainLoader(_config(data_dir, labeled_share=2.0), 0, [0], 0, 1)
  with pytest.raises(ValueError, match="batch_size=20 is not divisible by the 3"):
    ip.TrainLoader(_config(data_dir), 0, [0, 1], 0, 3)
  with pytest.raises(ValueError, match="eval_batch_size=40 .* 3 processes"):
    next(ip.eval_batches(_config(data_dir), "test", 0, 3))
  with pytest.raises(ValueError, match="'training'.*train_split.*validation"):
    ip.select_labeled(_config(data_dir, train_split="training"), 0)
  with pytest.raises(ValueError, match="'valid'.*'validation'"):
    next(ip.eval_batches(_config(data_dir), "valid", 0, 1))
  with pytest.raises(ValueError, match="labeled_indices"):
    ip.TrainLoader(_config(data_dir), 0, [N + 3], 0, 1)
  # A real dataset that is not built: the error says how to build it (or,
  # while its builder is absent, which module is missing).
  with pytest.raises((FileNotFoundError, ImportError),
                     match="(build_data --dataset=hgr1|hgr1_dataset_builder)"):
    ip.get_dataset_info(_config(data_dir, name="hgr1"))


@pytest.mark.parametrize("batch,share,multiple,count", [
    (20, 0.25, 4, 1), (20, 0.25, 1, 1), (20, 0.25, 4, 2), (20, 0.0, 8, 2)])
def test_labeled_only_reads_the_labelled_rows_of_the_full_batch(
    data_dir, batch, share, multiple, count):
  """``labeled_only`` batch s = the labelled rows of full batch s (+ masked pads)."""
  cfg = _config(data_dir, batch_size=batch, labeled_share=share)
  seed = int(np.random.default_rng().integers(1000))
  labeled = ip.select_labeled(cfg, seed)
  full = ip.TrainLoader(cfg, seed, labeled, 0, 1)
  parts = [ip.TrainLoader(cfg, seed, labeled, p, count, labeled_only=True,
                          row_multiple=multiple) for p in range(count)]
  n_lab = full.labeled_per_batch
  rows = parts[0].global_batch_size
  assert n_lab == max(round(batch * 0.2), math.ceil(batch * share))
  assert rows >= n_lab and rows % math.lcm(multiple, count) == 0
  assert rows - n_lab < math.lcm(multiple, count)
  assert parts[0].steps_per_epoch == full.steps_per_epoch
  for step in np.random.default_rng().choice(40, 4, replace=False):
    want = full.get_batch(step)
    got = [p.get_batch(step) for p in parts]
    got = {k: np.concatenate([g[k] for g in got]) for k in
           ("index", "image", "landmarks", "has_landmarks", "mask")}
    assert got["image"].shape[0] == rows
    real = got["mask"] == 1
    np.testing.assert_array_equal(real, np.arange(rows) < n_lab)
    np.testing.assert_array_equal(got["has_landmarks"], got["mask"])
    lab = want["has_landmarks"] == 1
    np.testing.assert_array_equal(got["index"][real], want["index"][lab])
    np.testing.assert_array_equal(got["image"][real], want["image"][lab])
    np.testing.assert_array_equal(got["landmarks"][real], want["landmarks"][lab])
    assert np.isin(got["index"][~real], got["index"][real]).all()


def test_labeled_only_with_everything_labelled_is_the_full_batch(data_dir):
  cfg = _config(data_dir, labeled_fraction=1.0)
  labeled = ip.select_labeled(cfg, 3)
  a = ip.TrainLoader(cfg, 3, labeled, 0, 1)
  b = ip.TrainLoader(cfg, 3, labeled, 0, 1, labeled_only=True, row_multiple=8)
  assert b.global_batch_size == 20
  for key in ("index", "mask", "has_landmarks"):
    np.testing.assert_array_equal(a.get_batch(4)[key], b.get_batch(4)[key])


def test_a_damaged_shard_is_named_with_the_rebuild_command(data_dir, tmp_path):
  """Issue 24 item 8: a damaged array_record file (a disk error) names the
  file, its split and how to rebuild the dataset, whether found by the
  check a run makes before its first step or by a read."""
  import shutil  # pylint: disable=g-import-not-at-top
  from landmark_ssl import train  # pylint: disable=g-import-not-at-top
  import tiny_config  # pylint: disable=g-import-not-at-top
  ip.get_dataset_info(_config(data_dir))  # builds it if no test did yet
  shutil.copytree(data_dir, tmp_path / "tfds")
  (shard,) = (tmp_path / "tfds").glob("blocks/small/*/blocks-test.array_record*")
  damaged = bytearray(shard.read_bytes())
  middle = len(damaged) // 3
  damaged[middle:middle + 2000] = bytes(b ^ 0x5A for b in
                                        damaged[middle:middle + 2000])
  shard.write_bytes(bytes(damaged))
  config = _config(str(tmp_path / "tfds"))
  want = (f"{shard} (split 'test' of dataset 'blocks/small') is damaged: "
          "Corrupted Riegeli/records file")
  fix = (f"Delete {shard.parent} and build the dataset again: python -m "
         f"landmark_ssl.build_data --dataset=blocks/small "
         f"--data_dir={tmp_path / 'tfds'}")
  with pytest.raises(ip.CorruptDatasetError) as info:
    ip.check_readable(config, ["train", "validation", "test"])
  assert str(info.value).startswith(want) and str(info.value).endswith(fix)
  ip.check_readable(config, ["train", "validation"])  # the others are fine
  with pytest.raises(ip.CorruptDatasetError) as info:
    list(ip.eval_batches(config, "test"))
  assert str(info.value).startswith(want) and fix in str(info.value)
  # A run stops before its first step, its workdir unwritten.
  run = tiny_config.get_config("blocks")
  run.data.data_dir = str(tmp_path / "tfds")
  with pytest.raises(ip.CorruptDatasetError, match="split 'test'"):
    train.train_and_evaluate(run, tmp_path / "run")
  assert not (tmp_path / "run" / "config.json").exists()
  assert not (tmp_path / "run" / "checkpoints").exists()


# --------------------------------------------------------------------------
# the content digest


def test_examples_digest_known_answer_and_sensitivity():
  import hashlib  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng()
  examples = [{"image": rng.integers(0, 256, (4, 5, 1), dtype=np.uint8),
               "landmarks": rng.normal(size=(3, 2)).astype(np.float32),
               "id": b"x%d" % i} for i in range(3)]
  # Known answer: the same bytes hashed by hand.
  by_hand = hashlib.sha256()
  for ex in examples:
    for key in ("id", "image", "landmarks"):
      v = np.asarray(ex[key])
      by_hand.update(f"{key}|{v.dtype.str}|{v.shape}|".encode() + v.tobytes())
  digest = ip.examples_digest(examples)
  assert digest == by_hand.hexdigest()
  # The features' order in a dict does not matter; every change does.
  assert ip.examples_digest(
      [dict(reversed(list(ex.items()))) for ex in examples]) == digest
  changed = [dict(ex) for ex in examples]
  changed[1]["image"] = changed[1]["image"].copy()
  changed[1]["image"][rng.integers(4), rng.integers(5), 0] ^= 1
  assert ip.examples_digest(changed) != digest
  assert ip.examples_digest(examples[::-1]) != digest
  as_float64 = [dict(ex, landmarks=ex["landmarks"].astype(np.float64))
                for ex in examples]
  assert ip.examples_digest(as_float64) != digest


def test_content_digest_is_the_data_not_the_files(data_dir, source, tmp_path):
  """Two builds of blocks/small give one digest per split (their record
  bytes need not agree), the digest of the decoded examples in order."""
  config = _config(data_dir)
  splits = ["train", "validation", "test"]
  first = ip.content_digest(config, splits)
  assert first["name"] == "blocks/small" and first["version"]
  for split in splits:
    assert first["splits"][split] == {
        "examples": N,
        "sha256": ip.examples_digest(source[split][i] for i in range(N))}
  again = ip.content_digest(_config(str(tmp_path)), ["test", "train"])
  assert again["splits"]["test"] == first["splits"]["test"]
  assert again["splits"]["train"] == first["splits"]["train"]
  assert first["splits"]["train"] != first["splits"]["test"]


def test_subset_digest_is_of_the_sorted_indices():
  import hashlib  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng()
  indices = rng.choice(1000, size=30, replace=False)
  expected = hashlib.sha256(b"".join(
      int(i).to_bytes(8, "little", signed=True) for i in sorted(indices)))
  assert ip.subset_digest(indices) == expected.hexdigest()
  assert ip.subset_digest(indices[::-1].astype(np.int32)) == expected.hexdigest()
  assert ip.subset_digest(indices[1:]) != expected.hexdigest()


# --------------------------------------------------------------------------
# splits in memory


def _leaves_equal(a, b):
  """Same nested keys, and every array equal in value, dtype and shape."""
  assert sorted(a) == sorted(b)
  for key in a:
    if isinstance(a[key], dict):
      _leaves_equal(a[key], b[key])
    else:
      assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("labeled_only", [False, True])
def test_batches_from_memory_are_those_from_the_files(data_dir, labeled_only):
  rng = np.random.default_rng()
  seed = int(rng.integers(10_000))
  fraction = float(rng.choice([0.05, 0.2, 0.5]))
  cfg = _config(data_dir, labeled_fraction=fraction)
  files = _config(data_dir, labeled_fraction=fraction, cache_mib=0)
  labeled = ip.select_labeled(cfg, seed)
  memory = ip.TrainLoader(cfg, seed, labeled, 0, 1, labeled_only=labeled_only)
  disk = ip.TrainLoader(files, seed, labeled, 0, 1, labeled_only=labeled_only)
  assert memory.in_memory and not disk.in_memory
  for step in rng.integers(0, 10_000, size=5):
    _leaves_equal(memory.get_batch(int(step)), disk.get_batch(int(step)))
  start = int(rng.integers(100))
  it = memory.iterate(start)
  for i in range(3):
    _leaves_equal(next(it), disk.get_batch(start + i))
  it.close()
  for split in ("validation", "test"):
    for m, d in zip(ip.eval_batches(cfg, split), ip.eval_batches(files, split),
                    strict=True):
      _leaves_equal(m, d)


def test_a_split_over_the_budget_is_read_from_the_files(data_dir, source):
  one_example = sum(np.asarray(v).nbytes for v in source["train"][0].values()
                    if not isinstance(v, (str, bytes)))
  # Room for half of the split: not decoded; the batches are the same.
  cfg = _config(data_dir, cache_mib=one_example * N / 2 / 2**20)
  labeled = ip.select_labeled(cfg, 3)
  small = ip.TrainLoader(cfg, 3, labeled, 0, 1)
  assert not small.in_memory
  _leaves_equal(small.get_batch(5),
                ip.TrainLoader(_config(data_dir), 3, labeled, 0, 1).get_batch(5))


class _ListSource:
  """A data source over a list of example dicts."""

  def __init__(self, examples):
    self.examples = examples

  def __len__(self):
    return len(self.examples)

  def __getitem__(self, i):
    return self.examples[i]

  def __getitems__(self, indices):
    return [self.examples[i] for i in indices]


def test_decode_split_stacks_the_numeric_features():
  rng = np.random.default_rng()
  n = int(rng.integers(300, 700))  # more than one 256-example chunk
  examples = [{"image": rng.integers(0, 256, (4, 3, 1), dtype=np.uint8),
               "landmarks": rng.normal(size=(2, 2)).astype(np.float32),
               "label": int(rng.integers(5)), "normalizer": float(rng.random()),
               "id": f"example {i}".encode()} for i in range(n)]
  split = ip.decode_split(_ListSource(examples), 2**20)
  assert len(split) == n and sorted(split.arrays) == [
      "image", "label", "landmarks", "normalizer"]  # text left out
  indices = rng.integers(0, n, size=17)
  got = split.gather(indices)
  for key in split.arrays:
    want = np.stack([np.asarray(examples[i][key]) for i in indices])
    assert got[key].dtype == want.dtype
    np.testing.assert_array_equal(got[key], want)
  per_example = 12 + 16 + 8 + 8
  assert split.nbytes == n * per_example
  # Over the budget, shapes that vary, nested features: not decoded.
  assert ip.decode_split(_ListSource(examples), n * per_example - 1) is None
  ragged = examples[:300] + [dict(examples[0], landmarks=np.zeros((3, 2)))]
  assert ip.decode_split(_ListSource(ragged), 2**20) is None
  nested = [dict(e, extra={"a": 1}) for e in examples[:3]]
  assert ip.decode_split(_ListSource(nested), 2**20) is None
  text_only = [{"id": e["id"]} for e in examples[:3]]
  assert ip.decode_split(_ListSource(text_only), 2**20) is None


def test_a_split_is_decoded_once_until_its_files_change(data_dir, tmp_path):
  import os  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top
  ip.get_dataset_info(_config(data_dir))  # builds it if no test did yet
  shutil.copytree(data_dir, tmp_path / "tfds")
  builder = build_data.make_builder("blocks/small", str(tmp_path / "tfds"))
  source = builder.as_data_source(split="train")
  first = ip.split_in_memory(builder, "train", source, 2**30)
  assert first is not None
  assert ip.split_in_memory(builder, "train", source, 2**30) is first
  assert ip.split_in_memory(builder, "train", source, 0) is None
  assert ip.split_in_memory(builder, "train", source, 1000) is None  # too small
  for path in builder.info.splits["train"].filepaths:  # "rebuilt"
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  again = ip.split_in_memory(builder, "train", source, 2**30)
  assert again is not None and again is not first
  for key in first.arrays:
    np.testing.assert_array_equal(again.arrays[key], first.arrays[key])
