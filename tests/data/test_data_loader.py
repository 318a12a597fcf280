"""DataLoader: seeded order, epochs, resume; collate functions; Subset / random_split."""
import json

import numpy as np
import pytest

from tinyvision.data import (DataLoader, Dataset, Subset, default_collate, detection_collate, random_split)


class Numbers(Dataset):
    """Item i = (an image whose pixels are all i, {"i": i}); records the epochs it was told."""

    def __init__(self, n, shape=(1, 2, 2)):
        self.n, self.shape, self.epochs = n, shape, []

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        i = self._check_index(index)
        return np.full(self.shape, i, dtype=np.float32), {"i": np.array(i)}

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.epochs.append(epoch)


def ids(batch):
    return batch[1]["i"].tolist()


def test_unshuffled_batches_and_len():
    loader = DataLoader(Numbers(10), batch_size=4)
    assert len(loader) == 3
    assert [ids(b) for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    loader = DataLoader(Numbers(10), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [ids(b) for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_shuffle_is_a_function_of_seed_and_epoch():
    a = DataLoader(Numbers(20), batch_size=5, shuffle=True, seed=3)
    b = DataLoader(Numbers(20), batch_size=5, shuffle=True, seed=3)
    first = [ids(x) for x in a]
    assert first == [ids(x) for x in b]
    # the documented formula, the whole epoch a permutation
    expected = np.random.default_rng(np.random.SeedSequence([3, 0])).permutation(20)
    assert sum(first, []) == expected.tolist()
    # the next pass is epoch 1, a different order; epoch 0 again after set_epoch(0)
    second = [ids(x) for x in a]
    assert a.epoch == 2 and second != first
    assert sum(second, []) == np.random.default_rng(np.random.SeedSequence([3, 1])).permutation(20).tolist()
    a.set_epoch(0)
    assert [ids(x) for x in a] == first
    # another seed, another order
    c = DataLoader(Numbers(20), batch_size=5, shuffle=True, seed=4)
    assert [ids(x) for x in c] != first


def test_pinned_order_same_on_every_machine():
    # PCG64 + permutation are platform independent: this list is the contract
    loader = DataLoader(Numbers(8), batch_size=8, shuffle=True, seed=0)
    assert ids(next(iter(loader))) == np.random.default_rng(np.random.SeedSequence([0, 0])).permutation(8).tolist()
    assert loader.order(0).tolist() == [int(v) for v in np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([0, 0]))).permutation(8)]


def test_dataset_is_told_the_epoch():
    ds = Numbers(6)
    loader = DataLoader(ds, batch_size=2, shuffle=True)
    for _ in range(3):
        list(loader)
    loader.set_epoch(7)
    list(loader)
    assert ds.epochs == [0, 1, 2, 7]


def test_abandoned_pass_does_not_advance_the_epoch():
    loader = DataLoader(Numbers(9), batch_size=3, shuffle=True, seed=1)
    full = [ids(b) for b in loader]
    loader.set_epoch(0)
    for k, batch in enumerate(loader):
        if k == 1:
            break
    assert loader.epoch == 0
    assert [ids(b) for b in loader] == full


def test_resume_mid_epoch_continues_exactly():
    def run(interrupt_at=None):
        loader = DataLoader(Numbers(17), batch_size=4, shuffle=True, seed=5)
        seen, state = [], None
        for epoch in range(3):
            for k, batch in enumerate(loader):
                seen.append(ids(batch))
                if interrupt_at == (epoch, k):
                    state = json.loads(json.dumps(loader.state_dict()))   # JSON-able
                    return seen, state
        return seen, None

    uninterrupted, _ = run()
    before, state = run(interrupt_at=(1, 2))
    assert state["epoch"] == 1 and state["batches_done"] == 3
    resumed = DataLoader(Numbers(17), batch_size=4, shuffle=True, seed=5)
    resumed.load_state_dict(state)
    after = []
    for _ in range(2):                      # the rest of epoch 1, then epoch 2
        after += [ids(b) for b in resumed]
    assert before + after == uninterrupted


def test_resume_then_set_epoch_keeps_the_position():
    full = DataLoader(Numbers(10), batch_size=3, shuffle=True, seed=9)
    epoch1 = [ids(b) for b in (full.set_epoch(1) or full)]
    partial = DataLoader(Numbers(10), batch_size=3, shuffle=True, seed=9)
    partial.set_epoch(1)
    it = iter(partial)
    next(it)
    state = partial.state_dict()
    resumed = DataLoader(Numbers(10), batch_size=3, shuffle=True, seed=9)
    resumed.load_state_dict(state)
    resumed.set_epoch(1)                     # an engine's loop calls this before each epoch
    assert [ids(b) for b in resumed] == epoch1[1:]
    resumed.set_epoch(1)                     # no pending resume: the whole epoch again
    assert [ids(b) for b in resumed] == epoch1


def test_resume_at_epoch_end():
    loader = DataLoader(Numbers(6), batch_size=2, shuffle=True, seed=2)
    list(loader)
    state = loader.state_dict()
    assert state["epoch"] == 1 and state["batches_done"] == 0
    other = DataLoader(Numbers(6), batch_size=2, shuffle=True, seed=2)
    other.load_state_dict(state)
    assert [ids(b) for b in other] == [ids(b) for b in loader]


def test_load_state_dict_rejects_a_different_loader():
    state = DataLoader(Numbers(6), batch_size=2).state_dict()
    with pytest.raises(ValueError, match="batch_size=2"):
        DataLoader(Numbers(6), batch_size=3).load_state_dict(state)
    with pytest.raises(ValueError, match="dataset_length=6"):
        DataLoader(Numbers(7), batch_size=2).load_state_dict(state)
    with pytest.raises(KeyError, match="epoch"):
        DataLoader(Numbers(6), batch_size=2).load_state_dict({"seed": 0})


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"shuffle": "yes"}, "shuffle must be True or False"),
    ({"drop_last": 1}, "drop_last must be True or False"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"collate_fn": 3}, "collate_fn must be callable"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        DataLoader(Numbers(4), **kwargs)
    with pytest.raises(TypeError, match="__len__"):
        DataLoader(object())
    with pytest.raises(ValueError, match="set_epoch"):
        DataLoader(Numbers(4)).set_epoch(-1)


def test_default_collate_stacks_recursively():
    samples = [(np.ones((3, 2, 2)) * i, {"boxes": np.zeros((1, 4)) + i, "label": i, "name": f"s{i}"})
               for i in range(3)]
    images, targets = default_collate(samples)
    assert images.shape == (3, 3, 2, 2) and images[2, 0, 0, 0] == 2
    assert targets["boxes"].shape == (3, 1, 4)
    assert targets["label"].tolist() == [0, 1, 2]
    assert targets["name"] == ["s0", "s1", "s2"]


def test_default_collate_names_the_ragged_key():
    samples = [(np.zeros((3, 4, 4)), {"boxes": np.zeros((k, 4))}) for k in (1, 2)]
    with pytest.raises(ValueError, match=r"\['boxes'\].*\(1, 4\).*\(2, 4\).*detection_collate"):
        default_collate(samples)
    with pytest.raises(ValueError, match="keys"):
        default_collate([{"a": 1}, {"b": 1}])
    with pytest.raises(ValueError, match="non-empty"):
        default_collate([])


def test_detection_collate():
    same = [(np.zeros((3, 4, 4)), {"boxes": np.zeros((k, 4))}) for k in (0, 2, 1)]
    images, targets = detection_collate(same)
    assert isinstance(images, np.ndarray) and images.shape == (3, 3, 4, 4)
    assert [t["boxes"].shape[0] for t in targets] == [0, 2, 1]
    ragged = [(np.zeros((3, 4, 4)), {}), (np.zeros((3, 5, 6)), {})]
    images, targets = detection_collate(ragged)
    assert isinstance(images, list) and [im.shape for im in images] == [(3, 4, 4), (3, 5, 6)]
    with pytest.raises(ValueError, match="sample 1 must be an \\(image, target\\) pair"):
        detection_collate([(np.zeros(1), {}), np.zeros(1)])


def test_subset_and_random_split():
    ds = Numbers(10)
    train, val = random_split(ds, [7, 3], seed=1)
    got = sorted([int(train[i][1]["i"]) for i in range(7)] + [int(val[i][1]["i"]) for i in range(3)])
    assert got == list(range(10))
    again, _ = random_split(ds, [7, 3], seed=1)
    assert again.indices == train.indices
    with pytest.raises(ValueError, match="sum to len"):
        random_split(ds, [5, 4])
    with pytest.raises(IndexError, match="out of range"):
        Subset(ds, [0, 10])
    with pytest.raises(IndexError, match="index 3 is out of range for 3"):
        val[3]
    assert int(val[-1][1]["i"]) == int(val[2][1]["i"])


def test_docstring_examples_run():
    import doctest

    import tinyvision.data as data

    for module in (data, data.loader, data.shapes, data.transforms, data.coco, data.mask):
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0, module.__name__
