"""Data-parallel execution for the CPU kernels: one worker thread per core, each with
single-threaded BLAS, each working on its own images.

Why: a convolution is a sequence of (im2col, GEMM) steps. Running each step on all cores
(parallel im2col, then multi-threaded GEMM) puts a barrier after every step; on a busy
machine every barrier waits for the slowest core's time slice, and small steps drown in
synchronisation. Giving each core its own share of the batch instead — its own columns
buffer in its own cache, its own single-threaded GEMMs — has no barrier until the end.
Measured on the 2-core CI machine under load from other processes: 1.3x-7x faster than
the step-parallel form (see docs/conv.md).

NumPy's matmul and ``nogil`` Numba kernels release the GIL, so plain Python threads run
truly in parallel. OpenBLAS's own thread count is set to 1 for the duration (and restored);
when NumPy's BLAS is not an OpenBLAS we can reach, callers fall back to the step-parallel form.

The pool threads are pinned, each to one CPU, while they run (Linux; ``PIN_THREADS``): after
an idle spell the scheduler tended to put both workers on one core for several milliseconds,
which made a layer's forward + backward pass up to 1.5-2x slower when called after a pause
(see _cpus_for_tasks and docs/conv.md). For the length of a parallel call the caller's thread
is held to the CPU it is on, and the workers take the other CPUs (``PIN_CALLER``); it gets its
own CPUs back when the call returns.

Several caller threads may run convolutions at once (they share the pools, which are kept
for the life of the process); a forked child starts afresh (_reset_after_fork).

This module is the one home of the kernels' speed plumbing: glibc malloc's thresholds
(``keep_freed_memory``), the pool of polling workers (``_Pool``) and its schedulers
(``run_parallel``: one task per thread; ``run_queue``: chunks from a shared queue, or a fixed
round-robin for sums; ``run_chunks``: chunk indices from a shared counter; ``run_plans``: one
data-parallel plan per thread), the one chunker of a batch of images by rows (``row_chunks``,
``batch_plans``, ``row_ranges``), BLAS thread control (``single_threaded_blas``,
``blas_outside_workers``), how many threads a piece of work is worth (``SERIAL_MAX_MACS``,
``serial``, ``threads_for_macs``; ``run_plane_ranges`` for the kernels over N*C planes) and
the kept scratch buffers (``workspace``, ``WORKSPACE_BYTES``). The kernels (conv, winograd,
pool, resample, batch_norm, activation) import these and nothing from each other's speed code.
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import glob
import math
import os
import threading

import numpy as np

__all__ = ["keep_freed_memory", "num_threads", "blas_threads_controllable", "single_threaded_blas", "blas_outside_workers",
           "blas_for_product", "run_parallel", "run_queue", "run_chunks", "run_plans", "parallel_kernel_lock",
           "serial", "SERIAL_MAX_MACS",
           "threads_for_macs", "run_plane_ranges", "row_chunks", "batch_plans", "row_ranges", "workspace",
           "WORKSPACE_BYTES"]

_lock = threading.RLock()
_blas = None  # (get, set) ctypes functions, or False when unavailable


# ======================================================================================
# Keeping freed memory for reuse (glibc)
# ======================================================================================
# A training step allocates and frees the same large arrays every time (activations, their
# gradients, each layer's output). glibc's malloc gives large blocks back to the kernel when they
# are freed (mmap'd blocks at once; the top of the heap once more than a threshold of it is free),
# so the next step takes a page fault for every 4 KiB of them again, and a fault is slow in a VM
# (~5 us here: a ResNet-18 step took ~7000 faults and 40 ms of system time). With the two
# thresholds raised, freed blocks stay in the process and are reused: the ResNet-18 step went from
# 322-361 ms to 285-330 ms (three fresh processes each way, alternated), faults 7000 -> ~10.
# The cost: the process keeps up to KEEP_FREED_BYTES of freed memory instead of returning it.
# Set TINYVISION_KEEP_FREED_MEMORY=0 to leave malloc as it is.
KEEP_FREED_BYTES = 2**31 - 1  # M_TRIM_THRESHOLD: free heap top kept before trimming (mallopt's int)
HEAP_BLOCK_MAX = 2**30  # M_MMAP_THRESHOLD: blocks up to this size come from the heap, not mmap
malloc_tuned = False  # whether keep_freed_memory changed malloc's thresholds in this process


def keep_freed_memory():
    """Raise glibc malloc's trim and mmap thresholds (once; not on other C libraries, not when
    TINYVISION_KEEP_FREED_MEMORY=0). Returns whether they are raised."""
    global malloc_tuned
    if malloc_tuned or os.environ.get("TINYVISION_KEEP_FREED_MEMORY", "1") == "0":
        return malloc_tuned
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    # Older glibc refuses an mmap threshold above 32 MiB. The trim threshold is raised only once
    # the mmap one is: setting it alone fixes the mmap threshold at its current value (128 KiB at
    # first), and then every large block is mmap'd afresh: 10x the faults.
    if mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_MAX) or mallopt(M_MMAP_THRESHOLD, 32 * 2**20):
        malloc_tuned = bool(mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES))
    return malloc_tuned


keep_freed_memory()


def num_threads() -> int:
    """Worker count: Numba's thread count (NUMBA_NUM_THREADS, numba.set_num_threads)."""
    import numba

    return max(1, int(numba.get_num_threads()))


def _blas_functions():
    global _blas
    if _blas is None:
        _blas = False
        libdir = os.path.dirname(np.__file__) + ".libs"
        names = [("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                 ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
                 ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
                 ("openblas_get_num_threads", "openblas_set_num_threads")]
        for path in sorted(glob.glob(os.path.join(libdir, "*openblas*"))):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for get_name, set_name in names:
                if hasattr(lib, get_name) and hasattr(lib, set_name):
                    get_fn, set_fn = getattr(lib, get_name), getattr(lib, set_name)
                    get_fn.restype = ctypes.c_int
                    set_fn.argtypes = [ctypes.c_int]
                    _blas = (get_fn, set_fn)
                    return _blas
    return _blas


def blas_threads_controllable() -> bool:
    """Whether NumPy's BLAS is an OpenBLAS whose thread count we can set."""
    return bool(_blas_functions())


_blas_users = 0
_blas_saved = None


@contextlib.contextmanager
def single_threaded_blas():
    """OpenBLAS uses one thread inside this block; the previous count comes back after the last
    of any overlapping blocks (from several caller threads) has exited."""
    global _blas_users, _blas_saved
    fns = _blas_functions()
    if not fns:
        yield
        return
    get_fn, set_fn = fns
    with _lock:
        if _blas_users == 0:
            _blas_saved = int(get_fn())
            set_fn(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _lock:
            _blas_users -= 1
            if _blas_users == 0:
                set_fn(_blas_saved)


# How long an idle pool thread keeps polling for its next job before it sleeps, and how long a
# caller polls for a job's end before it sleeps (see _Pool).
SPIN_SECONDS = 0.002


def _make_pollers():
    import platform

    import numba
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")

    @intrinsic
    def cpu_relax(typingctx):
        """The x86 PAUSE instruction (nothing elsewhere): tells the core this is a wait loop, so
        that it yields its execution units to a sibling hardware thread (a VM's vCPUs may be
        siblings on the host) and draws less power. The usual form of a spin-wait; on this VM a
        PAUSE-polling thread did not slow a GEMM on the other CPU (2.58 vs 2.60 ms)."""
        def codegen(context, builder, signature, args):
            if x86:
                fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                    "llvm.x86.sse2.pause")
                builder.call(fn, [])
            return context.get_dummy_value()

        return types.void(), codegen

    # counters[k + (r & mask)] with mask 0 at run time: the index looks different on every round,
    # so the compiler cannot read the counter once, before the loop (it has no volatile loads).
    @numba.njit(nogil=True, cache=True)
    def poll_while_equal(counters, k, value, mask, rounds):
        for r in range(rounds):
            if counters[k + (r & mask)] != value:
                return True
            cpu_relax()
        return False

    @numba.njit(nogil=True, cache=True)
    def poll_until_reached(counters, k, target, mask, rounds):
        for r in range(rounds):
            if counters[k + (r & mask)] >= target:
                return True
            cpu_relax()
        return False

    return poll_while_equal, poll_until_reached


class _Job:
    __slots__ = ("fn", "arg", "cpu", "result", "error", "cancelled")

    def __init__(self, fn, arg, cpu):
        self.fn, self.arg, self.cpu = fn, arg, cpu
        self.result = self.error = None
        self.cancelled = False


class _Pool:
    """Worker threads that wait for their next job actively for a while, as OpenMP's do.

    Why not ThreadPoolExecutor: its idle threads sleep at once, and on this project's VMs (whose
    idle vCPUs halt at once) waking a sleeping thread took 40-170 us. A network's step calls the
    pool hundreds of times with Python work in between; here a worker polls its job counter (in
    ``nogil`` Numba, so the GIL stays free, with PAUSE: see cpu_relax) for SPIN_SECONDS after each
    job before it sleeps on a condition, and the caller polls a job's finish counter the same way.
    Measured: a burst of 2-thread calls of 1.3 ms tasks with 50 us of Python between them took
    1.85 ms per call with sleeping workers, 1.67 with polling ones; a ResNet-50 training step
    (interleaved A/B, one process) 768 ms with no polling, 728 with 0.2 ms, 669 with 2 ms;
    ResNet-18 even (277 ms each). The cost: a single layer called after an idle pause runs a
    little slower beside a polling worker (a 1x1 conv's forward + both gradients, 256 -> 64
    channels at 32 px: 10.8 ms without polling, 11.7 with; 12-15 against 19 before the caller was
    held to its own CPU, see _caller_pinned). Each worker has its own queue of jobs, run
    in order; counters are 64 bytes apart. (A thread that must wait for the GIL still sleeps on
    CPython's condition: a worker's start is ~50 us after the caller's even when it polls.)
    """

    STRIDE = 8  # int64 counters per worker: one cache line each

    def __init__(self):
        self.poll_while_equal, self.poll_until_reached = _make_pollers()
        capacity = max(64, 2 * (os.cpu_count() or 1))  # workers the counters hold
        self.submitted = np.zeros(capacity * self.STRIDE, np.int64)  # jobs given to worker k (caller side)
        self.finished = np.zeros(capacity * self.STRIDE, np.int64)  # jobs worker k has finished
        self.asleep = np.zeros(capacity * self.STRIDE, np.int64)  # 1 while worker k sleeps (not polling); for inspection and tests
        self.queues, self.wake, self.done, self.threads = [], [], [], []
        self.rounds = self._calibrate()

    def _calibrate(self):
        """Polling rounds in SPIN_SECONDS, measured (and compiling the pollers)."""
        import time

        probe = np.zeros(self.STRIDE, np.int64)
        self.poll_while_equal(probe, 0, 0, 0, 10)
        self.poll_until_reached(probe, 0, 1, 0, 10)
        n = 200_000
        t0 = time.perf_counter()
        self.poll_while_equal(probe, 0, 0, 0, n)
        per_round = max(time.perf_counter() - t0, 1e-9) / n
        return max(1000, int(SPIN_SECONDS / per_round))

    def ensure(self, count):
        """At least `count` workers (never more than the counters hold)."""
        if count > len(self.submitted) // self.STRIDE:
            raise ValueError(f"at most {len(self.submitted) // self.STRIDE} pool threads; asked for {count}")
        with _lock:
            while len(self.threads) < count:
                k = len(self.threads)
                self.queues.append(collections.deque())
                self.wake.append(threading.Condition(threading.Lock()))
                self.done.append(threading.Condition(threading.Lock()))
                t = threading.Thread(target=self._loop, args=(k,), name=f"tinyvision-{k}", daemon=True)
                self.threads.append(t)
                t.start()

    def submit(self, k, job):
        """Queue `job` for worker k; its ticket (wait(k, ticket) returns once it has run)."""
        i = k * self.STRIDE
        with self.wake[k]:
            self.queues[k].append(job)
            ticket = int(self.submitted[i]) + 1
            self.submitted[i] = ticket
            self.wake[k].notify()
        return ticket

    def wait(self, k, ticket):
        i = k * self.STRIDE
        if self.finished[i] >= ticket or self.poll_until_reached(self.finished, i, ticket, 0, self.rounds):
            return
        with self.done[k]:
            while self.finished[i] < ticket:
                self.done[k].wait()

    def _loop(self, k):
        i = k * self.STRIDE
        taken = 0
        queue, wake, done = self.queues[k], self.wake[k], self.done[k]
        while True:
            if self.submitted[i] == taken and not self.poll_while_equal(self.submitted, i, taken, 0, self.rounds):
                self.asleep[i] = 1
                with wake:
                    while self.submitted[i] == taken:
                        wake.wait()
                self.asleep[i] = 0
            job = queue.popleft()
            taken += 1
            if not job.cancelled:
                _running.active = True
                _pin(job.cpu)
                try:
                    job.result = job.fn(job.arg)
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                    job.error = e
                finally:
                    _running.active = False
            job = None  # drop the job's references (its closure, its arrays) before waiting again
            self.finished[i] = taken
            with done:
                done.notify_all()


_pool = None


def _get_pool(size):
    """The process's pool, with at least `size` workers (made on first use and kept)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = _Pool()
        pool = _pool
    pool.ensure(size)
    return pool


# Numba's "workqueue" threading layer (used when neither TBB nor OpenMP is present) aborts the
# process if two threads launch parallel kernels at once; launches go through this lock.
parallel_kernel_lock = threading.Lock()

_running = threading.local()


# Pin each pool thread to one CPU while it runs a task (see _cpus_for_tasks). Set to False to
# leave thread placement to the OS.
PIN_THREADS = True
# Also hold the calling thread to its CPU for the length of a parallel call (see _caller_pinned).
PIN_CALLER = True


def _cpus_for_tasks(count):
    """The CPU for each of `count` tasks of one parallel call, or None (no pinning): the allowed
    CPUs in turn, starting with the one the caller (task 0) is running on.

    Why pin: after the threads have been idle for ~0.1 s, Linux tended to wake both workers on
    one CPU and leave them sharing it until the load balancer moved one, a scheduler tick (4 ms)
    or more later, repeatedly. Measured on the 2-core CI machine: a 2-thread Winograd forward
    pass (128 channels, 32 px, batch 8) took 15-18 ms after a 0.1 s pause and 9-10 ms back to
    back; with the workers pinned, 10-12 ms in both cases, also with a busy process beside it.
    Why start at the caller's CPU: with the worker pinned to CPU 1 whatever the caller does, the
    caller, woken after a pause, was often put on CPU 1 too (this VM's scheduler packs threads
    onto few vCPUs), and the two shared it (logged with sched_getcpu: each task 2x slower).
    """
    if not PIN_THREADS or not hasattr(os, "sched_getaffinity"):
        return None
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except OSError:
        return None
    if len(allowed) < 2:
        return None
    here = _current_cpu()
    start = allowed.index(here) if here in allowed else 0
    return [allowed[(start + k) % len(allowed)] for k in range(count)]


def _make_current_cpu():
    """A function returning the CPU the calling thread runs on (glibc's sched_getcpu), or -1."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).sched_getcpu
    except (OSError, AttributeError):
        return lambda: -1
    fn.restype, fn.argtypes = ctypes.c_int, []
    return fn


_current_cpu = _make_current_cpu()


def _pin(cpu):
    """Restrict the calling (pool) thread to one CPU, or (cpu None) give back the CPUs it had
    before it was first pinned. Only pool threads call this; the caller's thread is held for one
    call at a time by _caller_pinned."""
    if cpu == getattr(_running, "pinned_to", None):
        return  # already there (a system call saved at the start of most jobs)
    try:
        if cpu is not None:
            if getattr(_running, "unpinned", None) is None:
                _running.unpinned = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {cpu})
        elif getattr(_running, "unpinned", None) is not None:
            os.sched_setaffinity(0, _running.unpinned)
            _running.unpinned = None
        _running.pinned_to = cpu
    except OSError:
        _running.pinned_to = None


@contextlib.contextmanager
def _caller_pinned(cpu):
    """The calling thread restricted to `cpu` (the one it runs on) for the block, then given back
    the CPUs it had; nothing when cpu is None or PIN_CALLER is off.

    Why: pinning only the workers was not enough. This VM's scheduler packs threads onto few
    vCPUs, and it moved the caller onto its worker's CPU during a call after a pause, so both
    ran at half speed (logged with sched_getcpu). Held, they cannot meet. Measured on a 2x2
    stride-2 transposed conv's forward + both gradients (128 -> 64 channels, 32 px, batch 8,
    2 threads, one process, interleaved): 16.5 ms after a 0.1 s pause and 16.8 back to back,
    against 24.9 and 15.7 with the workers alone pinned (35 ms after a pause before the workers
    took the CPUs other than the caller's). A training step is even (ResNet-18: 318 vs 316 ms):
    its calls come back to back. Costs three system calls per parallel call (read, set, restore).
    """
    if cpu is None or not PIN_CALLER:
        yield
        return
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
    except OSError:
        yield
        return
    try:
        yield
    finally:
        try:
            os.sched_setaffinity(0, before)
        except OSError:
            pass


# True in a process forked from one that imported this module (see _reset_after_fork).
in_forked_child = False


def _reset_after_fork():
    """In a forked child: forget the parent's pools and locks.

    fork() copies only the calling thread, so the parent's pool workers do not exist in the
    child, but their ThreadPoolExecutor still counts them and would never start new ones: the
    first convolution in the child (a data-loader worker, a multiprocessing pool) waited
    forever. Locks another thread held at the fork would stay held; make fresh ones. And
    Numba's OpenMP threading layer kills a child that launches a parallel kernel after the
    parent has used one (GNU OpenMP is not fork-safe): ``in_forked_child`` tells the kernels
    to use their serial twins.
    """
    global _lock, _pool, _blas_users, parallel_kernel_lock, in_forked_child
    in_forked_child = True
    _lock = threading.RLock()
    _pool = None
    _blas_users = 0
    parallel_kernel_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def run_parallel(fn, tasks):
    """[fn(task) for task in tasks] with single-threaded BLAS: the calling thread runs the first
    task, one pool thread each of the others (pinned to its own CPU, see _cpus_for_tasks).

    Re-entrant calls (from inside a worker) run sequentially in the calling thread.
    """
    if len(tasks) <= 1 or getattr(_running, "active", False):
        return [fn(t) for t in tasks]

    # The caller takes the first task itself: one thread fewer to wake, and its caches are warm.
    pool = _get_pool(len(tasks) - 1)
    cpus = _cpus_for_tasks(len(tasks)) or [None] * len(tasks)
    with single_threaded_blas(), _caller_pinned(cpus[0]):
        jobs = [_Job(fn, t, cpu) for t, cpu in zip(tasks[1:], cpus[1:])]
        tickets = [pool.submit(k, job) for k, job in enumerate(jobs)]
        _running.active = True
        try:
            first = fn(tasks[0])
        except BaseException:
            for job in jobs:
                job.cancelled = True
            for k, ticket in enumerate(tickets):
                pool.wait(k, ticket)  # let the others finish before the error propagates
            raise
        finally:
            _running.active = False
        for k, ticket in enumerate(tickets):
            pool.wait(k, ticket)
        for job in jobs:
            if job.error is not None:
                raise job.error
        return [first] + [job.result for job in jobs]


def run_chunks(fn, count):
    """fn(k) for k in range(count), shared by the calling thread and num_threads() - 1 pool threads.

    For memory-bound kernels (batch norm, ReLU, pooling), where a fixed split waits for its
    slowest part: on a busy machine a helper thread may not get a core for a whole time slice.
    Here every thread, the caller included, claims the next chunk index from a shared counter
    until none is left, so the work goes to whichever threads are running; the call returns as
    soon as every chunk is done (a helper that starts late finds nothing to do). fn must be
    safe to run on different k at once (each k writes only its own outputs) and should release
    the GIL (a ``nogil`` Numba kernel).
    The helpers are used whether they are polling or asleep. (They were once used only while
    polling: one woken after a pause ran its chunks far slower, BatchNorm 7.3 vs 5.1 ms. That
    was the caller and the helper sharing one CPU, see _caller_pinned; with the caller held to
    its own CPU, a woken helper wins: after a 0.1 s sleep, 8 x 64 x 64 x 64 float32, forward +
    backward, interleaved, BatchNorm train 3.9 ms with the helper woken vs 4.8 alone, ReLU 3.1
    vs 5.6, 2x2 max-pool 7.4 vs 12.1.)
    """
    helpers = min(num_threads(), count) - 1
    if helpers < 1 or getattr(_running, "active", False) or in_forked_child:
        for k in range(count):
            fn(k)
        return
    pool = _get_pool(helpers)
    # The helpers keep the CPUs run_parallel pins them to: a woken thread left free to run anywhere
    # was often put on the caller's CPU (Linux wakes a thread near its waker), and the caller's own
    # chunks then ran 1.5-2x slower until the balancer moved one of them.
    cpus = _cpus_for_tasks(helpers + 1) or [None] * (helpers + 1)
    lock = threading.Lock()
    all_done = threading.Event()
    state = {"next": 0, "error": None}
    finished = np.zeros(1, np.int64)  # chunks done; polled by the caller before it sleeps

    def claim_and_run(_=None):
        while True:
            with lock:
                k = state["next"]
                if k >= count or state["error"] is not None:
                    return
                state["next"] = k + 1
            try:
                fn(k)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                with lock:
                    state["error"] = e
                all_done.set()
                return
            with lock:
                finished[0] += 1
                if finished[0] == count:
                    all_done.set()

    with _caller_pinned(cpus[0]):
        for k in range(helpers):
            pool.submit(k, _Job(claim_and_run, None, cpus[k + 1]))
        claim_and_run()
        if not pool.poll_until_reached(finished, 0, count, 0, pool.rounds):
            all_done.wait()
    if state["error"] is not None:
        raise state["error"]


def run_queue(work, chunks, T, static=False):
    """work(an iterable of chunks) in each of T threads (the caller one of them); their results.

    The threads take the chunks one at a time from a shared queue, so a thread slowed down by
    another process on its core (the CI machine is shared) ends up with fewer chunks instead of
    making the others wait for it at the end.

    static=True: thread t takes chunks t, t + T, t + 2T, ... instead. For work that *sums* over
    its chunks (a weight gradient): which chunks land in which thread's sum must not depend
    on timing, or the float rounding of the total changes from run to run (training with a seed
    must repeat bit for bit).
    """
    if T <= 1:
        return [work(chunks)]
    if static:
        return run_parallel(work, [chunks[t::T] for t in range(T)])
    queue = iter(chunks)
    lock = threading.Lock()

    def take(_):
        def chunks_left():
            while True:
                with lock:
                    chunk = next(queue, None)
                if chunk is None:
                    return
                yield chunk

        return work(chunks_left())

    return run_parallel(take, list(range(T)))


# ======================================================================================
# How much work is worth a second thread, and the kept scratch buffers
# ======================================================================================
# Below this many multiply-adds a convolution (im2col or Winograd) runs in the calling thread,
# with single-threaded BLAS: handing half of it to a second thread costs more than it saves.
# (Waking a pool thread took 40-170 us on the CI machine, and a ResNet's 4x4 and 8x8 maps need
# only 0.5-2 ms serially: the serial pass of a 64-channel 3x3 conv at 4x4, batch 16, measured
# 2x faster than the 2-thread one, about even at 85 M multiply-adds; see docs/conv.md.)
SERIAL_MAX_MACS = 48_000_000


def serial(macs):
    """Whether a kernel of `macs` multiply-adds runs in the calling thread (see SERIAL_MAX_MACS)."""
    return macs < SERIAL_MAX_MACS and blas_threads_controllable()


def threads_for_macs(units, macs):
    """(T, BLAS context) for a kernel of `macs` multiply-adds cut into `units` chunks: below
    SERIAL_MAX_MACS one thread (the caller) and single-threaded BLAS for the whole call (a
    multi-threaded GEMM would wake the BLAS threads); else up to one thread per core, BLAS left
    as it is (see blas_outside_workers for the products the caller runs outside the workers)."""
    if serial(macs):
        return 1, single_threaded_blas()
    T = min(num_threads(), units)
    return (T if blas_threads_controllable() else 1), contextlib.nullcontext()


def blas_for_product(macs):
    """The BLAS context for a matrix product of `macs` multiply-adds made outside the kernels
    (a Linear layer's matmul): single-threaded below SERIAL_MAX_MACS, else BLAS as it is.

    Why: after a stretch of our own pool's work, waking OpenBLAS's worker threads for a small
    product often cost milliseconds (measured on a ResNet-18 step: the 8 x 512 x 1000 Linear
    took 8-10 ms in most steps, 0.3-0.8 ms single-threaded); a product this small gains
    little from a second thread even when the wake-up goes well.
    """
    return single_threaded_blas() if serial(macs) else contextlib.nullcontext()


def blas_outside_workers(T):
    """Single-threaded BLAS around the small products a kernel runs outside its T > 1 workers.

    A multi-threaded OpenBLAS call leaves its worker threads spinning for a while afterwards;
    on a 2-core machine they then compete with our own two workers (measured: a Winograd
    forward pass took 1.5x as long after a multi-threaded 0.2 ms filter transform).
    """
    return single_threaded_blas() if T > 1 else contextlib.nullcontext()


# Below this many element reads and writes a plane kernel (pool, resample) runs in the calling
# thread alone: handing work to a pool thread costs more than it saves, and on a busy machine a
# helper may wait a whole scheduler time slice (~20 ms) for a job of 0.2 ms. Above it the planes
# go out in chunks of about PLANE_CHUNK_WORK, claimed in turn by the threads (run_chunks).
PARALLEL_MIN_WORK = 1 << 20
PLANE_CHUNK_WORK = 1 << 18


def run_plane_ranges(kernel, P, work, *args):
    """kernel(*args, p0, p1) over the planes [0, P) (each call does planes p0 .. p1-1 and
    releases the GIL): in this thread when `work` (element reads and writes, all planes) is
    below PARALLEL_MIN_WORK, else in ranges of planes shared by the threads.

    Why not Numba's ``prange``: its OpenMP threads keep spinning on both cores after each
    parallel region, and the next multi-threaded GEMM (a Linear layer after a pool) ran in
    2-3 ms instead of 0.2 ms beside them.
    """
    if work < PARALLEL_MIN_WORK or P < 2:
        kernel(*args, 0, P)
        return
    step = max(1, PLANE_CHUNK_WORK // max(1, work // P))
    run_chunks(lambda k: kernel(*args, k * step, min(P, (k + 1) * step)), -(-P // step))


# ======================================================================================
# Cutting a batch of images into chunks of rows
# ======================================================================================
def row_chunks(n_start, n_count, rows, max_rows, threads=1):
    """[(n0, Nc, r0, Rc), ...]: images n0 .. n0+Nc-1, rows r0 .. r0+Rc-1 of each, covering images
    n_start .. n_start+n_count-1 of `rows` rows each (output rows for im2col, tile rows for
    Winograd) once, in order, every chunk at most max_rows rows of images in all.

    Whole images, as many to a chunk as fit, when one image fits (rows <= max_rows) and there
    are at least `threads` images (and then no more than n_count / threads to a chunk, so that
    every thread gets one); otherwise each image cut into bands of rows of near-equal height
    (at least one row; small enough that `threads` threads all get a band).
    """
    if rows <= max_rows and n_count >= threads:
        step = max(1, min(max_rows // rows, -(-n_count // threads)))
        end = n_start + n_count
        return [(n0, min(step, end - n0), 0, rows) for n0 in range(n_start, end, step)]
    band = max(1, min(max_rows, -(-rows * n_count // threads)))
    nb = -(-rows // band)  # bands per image, of heights differing by at most one
    edges = [k * rows // nb for k in range(nb + 1)]
    return [(n, 1, edges[k], edges[k + 1] - edges[k]) for n in range(n_start, n_start + n_count) for k in range(nb)]


def batch_plans(N, rows, row_bytes, target_rows, workspace_bytes=None, macs=None):
    """Work for each thread: [(parallel_kernels, chunks)], chunks from row_chunks.

    A chunk holds at most target_rows rows of images (the GEMM width a kernel wants) and at most
    the workspace bound's share of bytes (row_bytes per row). With T > 1 threads and at least T
    images, each thread takes a contiguous share of the batch and runs serial kernels with
    single-threaded BLAS (the data-parallel scheme above); the workspace is shared among them.
    Otherwise one plan runs in the calling thread: with the parallel kernels and multi-threaded
    BLAS, or, for a kernel of fewer than SERIAL_MAX_MACS multiply-adds, serially.
    """
    budget = WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes

    def chunks(start, count, share):
        return row_chunks(start, count, rows, max(1, min(target_rows, share // row_bytes)))

    if macs is not None and serial(macs):
        return [(False, chunks(0, N, budget))]
    T = min(num_threads(), N)
    if T <= 1 or not blas_threads_controllable():
        return [(True, chunks(0, N, budget))]
    plans, start = [], 0
    for t in range(T):
        count = N // T + (1 if t < N % T else 0)
        plans.append((False, chunks(start, count, max(1, budget // T))))
        start += count
    return plans


def run_plans(work, plans):
    """[work(plan) for plan in plans]: the plans in parallel, or one serial plan in the calling
    thread with single-threaded BLAS (a multi-threaded GEMM would wake the BLAS threads)."""
    if len(plans) == 1 and not plans[0][0]:
        with single_threaded_blas():
            return [work(plans[0])]
    return run_parallel(work, plans)


def row_ranges(rows, T, align=1):
    """[(r0, r1), ...]: `rows` cut into at most T contiguous ranges, boundaries multiples of align."""
    units = rows // align
    T = max(1, min(T, units))
    edges = [align * (k * units // T) for k in range(T + 1)]
    edges[-1] = rows
    return [(edges[k], edges[k + 1]) for k in range(T) if edges[k + 1] > edges[k]]


# Upper bound of a kernel's scratch (bytes), over all its threads: the im2col columns, the
# Winograd transforms. The batch is processed in chunks of images so that one chunk's scratch
# fits; an image too large on its own is cut into bands of output rows.
WORKSPACE_BYTES = 64 * 2**20

_local = threading.local()


def workspace(slot, shape, dtype):
    """A scratch array of this shape from a per-thread buffer that is kept between calls.

    Fresh allocations of tens of megabytes come from the OS each time (the allocator returns
    them on free) and cost a page fault per 4 KiB page on first touch: filling a fresh 32 MiB
    block took 3.5x as long as refilling a kept one on the CI machine. Keeping one buffer per
    (thread, slot) avoids that. Each holds at most one chunk, within the workspace bound.
    """
    size = math.prod(shape)  # (np.prod costs ~10 us a call; this runs hundreds of times a step)
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    key = (slot, np.dtype(dtype).str)
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = buffers[key] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)
