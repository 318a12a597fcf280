"""Datasets, batching and the seeded, resumable loader.

A dataset is anything with ``__len__`` and ``__getitem__(i) -> (image, target)``; :class:`Dataset`
is the base class the synthetic sets and :class:`~tinyvision.data.coco.CocoDetection` share.

:class:`DataLoader` cuts ``range(len(dataset))`` into batches, in a shuffled order when asked.
The order of epoch ``e`` is a function of ``(seed, e)`` only::

    order = np.random.default_rng(np.random.SeedSequence([seed, e])).permutation(len(dataset))

NumPy's PCG64 stream and its ``permutation`` are the same on every platform, so the same seed
gives the same batches on every machine. The loader counts epochs itself (one per complete
pass) or takes ``set_epoch(e)``; ``state_dict()`` records (epoch, batches already given), and a
loader that loads it continues the interrupted epoch at the next batch: a resumed run sees the
batches an uninterrupted run would have seen.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["Dataset", "Subset", "random_split", "DataLoader", "default_collate", "detection_collate"]


class Dataset:
    """Base of the map-style datasets: ``len(ds)`` items, ``ds[i] -> (image, target)``.

    ``image`` is float32 (C, H, W); ``target`` a dict of arrays (see :mod:`tinyvision.data`).
    ``set_epoch(e)`` is called by :class:`DataLoader` at the start of every epoch; datasets with
    random transforms use it to draw a different (but reproducible) augmentation per epoch.
    """

    epoch = 0

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _check_index(self, index):
        """``index`` as a non-negative int below len(self) (negative indices count from the end)."""
        n = len(self)
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (numbers.Integral, np.integer)):
            raise TypeError(f"{type(self).__name__} index must be an integer, got {index!r}")
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{type(self).__name__} index {int(index)} is out of range for {n} items")
        return i


class Subset(Dataset):
    """The items ``indices`` of ``dataset``, in that order (e.g. a held-out split)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        n = len(dataset)
        bad = [i for i in self.indices if not -n <= i < n]
        if bad:
            raise IndexError(f"Subset: indices {bad[:5]} are out of range for a dataset of {n} items")

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[self.indices[self._check_index(index)]]

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def random_split(dataset, lengths, seed=0):
    """Split into non-overlapping :class:`Subset` s of the given lengths (summing to len(dataset)),
    by the permutation ``default_rng(SeedSequence([seed])).permutation(len(dataset))``."""
    lengths = [int(v) for v in lengths]
    if any(v < 0 for v in lengths) or sum(lengths) != len(dataset):
        raise ValueError(f"random_split: lengths {lengths} must be non-negative and sum to len(dataset) = {len(dataset)}")
    order = np.random.default_rng(np.random.SeedSequence([int(seed)])).permutation(len(dataset))
    bounds = np.cumsum([0] + lengths)
    return [Subset(dataset, order[a:b].tolist()) for a, b in zip(bounds[:-1], bounds[1:])]


# --------------------------------------------------------------------------------------
# Collation
# --------------------------------------------------------------------------------------
def default_collate(samples):
    """Stack a list of samples into a batch, recursively (PyTorch's ``default_collate`` for arrays).

    * arrays of one shape -> one array with a new leading batch axis (N, ...);
    * numbers -> an array of N numbers; strings and None -> a list;
    * dicts -> a dict of collated values (every sample must have the same keys);
    * tuples/lists -> a tuple of collated positions (``(image, target)`` -> ``(images, targets)``).

    Arrays of different shapes cannot be stacked: a ValueError names the key and the shapes
    (detection targets hold a varying number of boxes: use :func:`detection_collate`).
    """
    if not isinstance(samples, (list, tuple)) or len(samples) == 0:
        raise ValueError(f"default_collate: expected a non-empty list of samples, got {samples!r:.80}")
    return _collate(list(samples), "sample")


def _collate(items, where):
    first = items[0]
    if isinstance(first, dict):
        keys = list(first)
        for i, item in enumerate(items):
            if not isinstance(item, dict) or list(item) != keys:
                got = list(item) if isinstance(item, dict) else type(item).__name__
                raise ValueError(f"default_collate: {where} {i} has keys {got}, sample 0 has {keys}")
        return {k: _collate([item[k] for item in items], f"{where}[{k!r}]") for k in keys}
    if isinstance(first, (tuple, list)):
        if any(not isinstance(item, (tuple, list)) or len(item) != len(first) for item in items):
            raise ValueError(f"default_collate: the samples' {where} have different lengths")
        return tuple(_collate([item[j] for item in items], f"{where}[{j}]") for j in range(len(first)))
    if first is None or isinstance(first, str):
        return list(items)
    arrays = [np.asarray(item) for item in items]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        listed = ", ".join(f"{i}: {a.shape}" for i, a in enumerate(arrays[:6]))
        raise ValueError(f"default_collate: cannot stack {where} of different shapes ({listed}"
                         f"{', ...' if len(arrays) > 6 else ''}); for detection targets use "
                         f"detection_collate")
    return np.stack(arrays)


def detection_collate(samples):
    """``[(image, target), ...] -> (images, targets)`` for targets of varying size.

    ``images`` is one (N, C, H, W) array when every image has the same shape, else the list of
    the N images (a detector's transform resizes and pads them); ``targets`` is the list of
    the N target dicts, unchanged.
    """
    if not isinstance(samples, (list, tuple)) or len(samples) == 0:
        raise ValueError(f"detection_collate: expected a non-empty list of (image, target), got {samples!r:.80}")
    images, targets = [], []
    for i, sample in enumerate(samples):
        if not isinstance(sample, (tuple, list)) or len(sample) != 2:
            raise ValueError(f"detection_collate: sample {i} must be an (image, target) pair, "
                             f"got {type(sample).__name__}")
        images.append(np.asarray(sample[0]))
        targets.append(sample[1])
    shapes = {im.shape for im in images}
    if len(shapes) == 1:
        return np.stack(images), targets
    return images, targets


# --------------------------------------------------------------------------------------
# The loader
# --------------------------------------------------------------------------------------
def _check_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"DataLoader: {name} must be True or False, got {value!r}")
    return bool(value)


class DataLoader:
    """Batches of a dataset in a seeded order; epoch-aware and resumable.

    Args:
        dataset: ``len(dataset)`` and ``dataset[i]``.
        batch_size (int >= 1): samples per batch.
        shuffle (bool): a new permutation every epoch, drawn from ``SeedSequence([seed, epoch])``;
            False: 0, 1, 2, ... every epoch.
        drop_last (bool): drop the last batch when it is smaller than ``batch_size``.
        collate_fn: list of samples -> batch; default :func:`default_collate`.
        seed (int >= 0 or None): the shuffling seed; None means 0 (tinyvision is deterministic
            unless asked otherwise).

    Epochs: iterating the loader to the end completes epoch ``loader.epoch`` and moves to the
    next; ``set_epoch(e)`` chooses the epoch of the next pass explicitly (and forgets a partial
    one). A pass abandoned early (``break``) does not advance the epoch: iterating again restarts
    that epoch. At the start of every pass the loader calls ``dataset.set_epoch(epoch)`` when the
    dataset has one, so random transforms differ per epoch and are reproducible.

    Resume: ``state = loader.state_dict()`` (also mid-pass, between batches) and later
    ``loader.load_state_dict(state)``: the next pass continues epoch ``state["epoch"]`` after its
    first ``state["batches_done"]`` batches (``set_epoch(state["epoch"])`` in between keeps that
    position, so a loop that calls ``set_epoch`` before every epoch resumes correctly).
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, collate_fn=None, seed=None):
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must have __len__ and __getitem__, got {type(dataset).__name__}")
        if (isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (numbers.Integral, np.integer))
                or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {collate_fn!r}")
        if seed is not None and (isinstance(seed, (bool, np.bool_))
                                 or not isinstance(seed, (numbers.Integral, np.integer)) or seed < 0):
            raise ValueError(f"DataLoader: seed must be a non-negative integer or None, got {seed!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = _check_flag(shuffle, "shuffle")
        self.drop_last = _check_flag(drop_last, "drop_last")
        self.collate_fn = default_collate if collate_fn is None else collate_fn
        self.seed = 0 if seed is None else int(seed)
        self.epoch = 0             # the epoch of the next (or current) pass
        self.batches_done = 0      # batches given so far in the current pass
        self._skip = 0             # batches to skip at the start of the next pass (resume)

    # -- order ----------------------------------------------------------------------------
    def order(self, epoch=None):
        """The sample indices of epoch ``epoch`` (default: the current one), in visiting order."""
        epoch = self.epoch if epoch is None else int(epoch)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
        return rng.permutation(n).astype(np.int64)

    def batch_indices(self, epoch=None):
        """The list of index arrays, one per batch, of epoch ``epoch``."""
        order = self.order(epoch)
        b = self.batch_size
        stop = (len(order) // b) * b if self.drop_last else len(order)
        return [order[i:i + b] for i in range(0, stop, b)]

    def __len__(self):
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    # -- epochs and resume -----------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        if isinstance(epoch, (bool, np.bool_)) or not isinstance(epoch, (numbers.Integral, np.integer)) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be a non-negative integer, got {epoch!r}")
        if self._skip and int(epoch) == self.epoch:
            return                     # the epoch a loaded state resumes: keep its position
        self.epoch = int(epoch)
        self.batches_done = 0
        self._skip = 0

    def state_dict(self) -> dict:
        """Plain ints (JSON-able): enough to continue this loader's sequence of batches exactly."""
        return {"seed": self.seed, "epoch": self.epoch, "batches_done": self.batches_done,
                "batch_size": self.batch_size, "shuffle": self.shuffle, "drop_last": self.drop_last,
                "dataset_length": len(self.dataset)}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise TypeError(f"DataLoader.load_state_dict: expected a dict, got {type(state).__name__}")
        missing = [k for k in ("seed", "epoch", "batches_done") if k not in state]
        if missing:
            raise KeyError(f"DataLoader.load_state_dict: the state has no {missing} (keys: {sorted(state)})")
        for key, mine in (("batch_size", self.batch_size), ("shuffle", self.shuffle),
                          ("drop_last", self.drop_last), ("dataset_length", len(self.dataset))):
            if key in state and state[key] != mine:
                raise ValueError(f"DataLoader.load_state_dict: the state was saved with {key}={state[key]!r}, "
                                 f"this loader has {key}={mine!r}; the batches would differ")
        done = int(state["batches_done"])
        if not 0 <= done <= len(self):
            raise ValueError(f"DataLoader.load_state_dict: batches_done={done} is outside [0, {len(self)}]")
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.batches_done = done
        self._skip = done

    # -- iteration ------------------------------------------------------------------------
    def __iter__(self):
        epoch, skip = self.epoch, self._skip
        self._skip = 0
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        batches = self.batch_indices(epoch)
        self.batches_done = skip
        for k in range(skip, len(batches)):
            batch = self.collate_fn([self.dataset[int(i)] for i in batches[k]])
            self.batches_done = k + 1
            yield batch
        # the pass is complete: the next one is the next epoch
        self.epoch = epoch + 1
        self.batches_done = 0

    def __repr__(self):
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, epoch={self.epoch})")
