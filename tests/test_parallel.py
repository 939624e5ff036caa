"""Ops split over threads (striate.backend.threads) and over cache-sized blocks (conv), and the malloc
setting (striate.backend.memory).

The test inputs are small, so by default every op runs as one part and one block; the fixture
`split_everything` makes each op split into as many parts and blocks as it can (one image per part,
one output row per block, on 3 threads), and the results must equal the unsplit ones, which
test_ops_torch.py checks against PyTorch.
"""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate.backend import conv, memory, threads as parallel


# --------------------------------------------------------------------------- the pool itself
def test_split_covers_the_batch_in_contiguous_parts(monkeypatch):
    monkeypatch.setitem(parallel._config, "threads", 3)
    monkeypatch.setattr(parallel, "MIN_PART", 10)
    assert parallel.split(7, 5) == parallel.WHOLE == (slice(None),)  # too little work: one part
    parts = parallel.split(100, 10**6)
    assert len(parts) == 3 * parallel.PARTS_PER_THREAD
    assert [i for s in parts for i in range(100)[s]] == list(range(100))
    assert max(s.stop - s.start for s in parts) - min(s.stop - s.start for s in parts) <= 1
    assert parallel.split(2, 10**6) == [slice(0, 1), slice(1, 2)]  # never more parts than images
    assert len(parallel.split(100, 25)) == 2                        # nor parts under MIN_PART


def test_map_parts_runs_parts_on_several_threads_in_order(split_everything):
    if parallel.get_num_threads() < 3:
        pytest.skip("threadpoolctl is not installed: striate runs on one thread")
    import time
    seen = []

    def fn(s):
        seen.append(threading.current_thread().name)
        time.sleep(0.01)  # long enough for every worker to wake up and take parts
        return list(range(30)[s])

    parts = parallel.split(30, 10**6)
    assert parallel.map_parts(fn, parts) == [list(range(30)[s]) for s in parts]
    assert len(seen) == len(parts) and len(set(seen)) == 3


def _who_ran(parts, seconds):
    """map_parts over ``parts`` with part i sleeping ``seconds(i)``: the thread name that ran each."""
    import time
    ran = {}

    def fn(s):
        i = parts.index(s)
        ran[i] = threading.current_thread().name
        time.sleep(seconds(i))
        return i

    assert parallel.map_parts(fn, parts) == list(range(len(parts)))  # each part once, results in order
    return ran


def test_each_thread_takes_its_own_block_of_parts_first(split_everything):
    if parallel.get_num_threads() < 3:
        pytest.skip("threadpoolctl is not installed: striate runs on one thread")
    # so that consecutive ops split alike keep each image on one core: six parts, thread t parts 2t, 2t+1
    parts = parallel.split(12, 10**6)
    assert len(parts) == 6
    ran = _who_ran(parts, lambda i: 0.05)  # long enough for the workers to wake up first
    main = threading.current_thread().name
    assert [ran[i] for i in range(6)] == [main, main] + ["striate-worker-1"] * 2 + ["striate-worker-2"] * 2


def test_parts_of_a_held_up_thread_are_taken_by_the_others(split_everything):
    if parallel.get_num_threads() < 3:
        pytest.skip("threadpoolctl is not installed: striate runs on one thread")
    parts = parallel.split(12, 10**6)
    ran = _who_ran(parts, lambda i: 0.5 if i == 2 else 0.01)  # worker 1 is held up by its first part
    assert ran[2] == "striate-worker-1" and ran[3] != "striate-worker-1"


def test_map_parts_raises_a_parts_error_after_every_part_finished(split_everything):
    finished = []

    def fn(s):
        if s.start == 0:
            raise KeyError("part 0 failed")
        finished.append(s)

    parts = parallel.split(3, 10**6)
    with pytest.raises(KeyError, match="part 0 failed"):
        parallel.map_parts(fn, parts)
    assert len(finished) == len(parts) - 1
    assert parallel.map_parts(lambda s: s.stop, parts)[-1] == 3  # the pool still works


def test_nested_parallel_calls_run_inline(split_everything):
    parts = parallel.split(4, 10**6)
    inner = parallel.map_parts(lambda s: sum(parallel.map_parts(lambda t: t.stop - t.start, parts)), parts)
    assert inner == [4] * len(parts)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_rejects_non_positive_integers(bad):
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        parallel.set_num_threads(bad)


def _blas_threads(threadpoolctl):
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]


class _SplitsTwice(st.nn.Module):
    """A module running two split ops, recording BLAS's thread counts in them and between them."""

    def forward(self, x):
        import threadpoolctl
        parts = parallel.split(4, 10**6)
        self.seen = parallel.map_parts(lambda s: _blas_threads(threadpoolctl), parts)
        self.between = _blas_threads(threadpoolctl)  # an unsplit GEMM here keeps BLAS on one thread
        self.seen += parallel.map_parts(lambda s: _blas_threads(threadpoolctl), parts)
        return x


def test_threads_pin_blas_to_one_inside_striate_calls_only():
    # (this replaces the test that BLAS stays pinned process-wide: striate scopes the limit to its own calls)
    threadpoolctl = pytest.importorskip("threadpoolctl")
    own = _blas_threads(threadpoolctl)
    old = parallel.get_num_threads()
    try:
        parallel.set_num_threads(2)
        assert _blas_threads(threadpoolctl) == own               # not changed by the setting itself
        module = _SplitsTwice()
        module(st.Tensor(np.ones(3)))
        assert module.seen and all(n == 1 for seen in module.seen for n in seen)  # pinned in the parts
        assert all(n == 1 for n in module.between)               # and between them, inside the call
        assert _blas_threads(threadpoolctl) == own               # given back when the call returns
        parallel.map_parts(lambda s: None, parallel.split(4, 10**6))
        assert _blas_threads(threadpoolctl) == own               # a split outside any module too
        parallel.set_num_threads(1)
        module(st.Tensor(np.ones(3)))
        assert all(seen == own for seen in module.seen)          # one thread of ours: BLAS keeps its own
    finally:
        parallel.set_num_threads(old)


def test_bad_environment_thread_count_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("STRIATE_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="STRIATE_NUM_THREADS must be a positive integer"):
        parallel._default_threads()
    monkeypatch.setenv("STRIATE_NUM_THREADS", "3")
    assert parallel._default_threads() == 3


@pytest.mark.parametrize("images, oh, image_bytes", [
    (5, 4, 10), (3, 4, conv.BLOCK_BYTES // 2), (64, 28, conv.BLOCK_BYTES // 53), (2, 5, conv.BLOCK_BYTES * 2),
    (1, 3, conv.BLOCK_BYTES * 10), (4, 7, conv.BLOCK_BYTES * 7 // 3)])
def test_blocks_tile_the_output_rows_evenly_within_the_budget(images, oh, image_bytes):
    tiles = conv.blocks(images, oh, image_bytes)
    cells = [(b, p) for imgs, rows in tiles for b in range(images)[imgs] for p in range(oh)[rows]]
    assert sorted(cells) == [(b, p) for b in range(images) for p in range(oh)]   # each once
    sizes = [len(range(images)[imgs]) * len(range(oh)[rows]) for imgs, rows in tiles]
    row_bytes = image_bytes / oh
    assert all(s * row_bytes <= max(conv.BLOCK_BYTES, row_bytes) for s in sizes)  # within budget
    assert max(sizes) - min(sizes) <= max(1, oh)                                  # even
    for imgs, rows in tiles:  # a block is whole images, or rows of one image: contiguous output
        assert rows == slice(None) or len(range(images)[imgs]) == 1


# --------------------------------------------------------------------------- split ops == unsplit ops
CONV_CASES = [  # (x shape, kernel, out channels, kwargs): every input-gradient path and patch layout
    ((3, 9, 8, 4), 3, 6, dict(padding=1)),                       # transposed conv (o > c: scatter)
    ((3, 9, 8, 6), 3, 4, dict(padding="same")),                  # transposed conv (o <= c)
    ((4, 11, 10, 3), 3, 5, dict(stride=2, padding=1)),           # scatter, strided
    ((3, 10, 9, 1), 5, 4, dict(padding=2)),                      # one channel: patches-major
    ((3, 9, 9, 4), 3, 4, dict(groups=2, padding=1)),             # grouped, transposed conv
    ((3, 9, 9, 4), 3, 8, dict(groups=4, stride=2)),              # grouped, strided: grouped scatter
    ((2, 12, 11, 3), 3, 4, dict(dilation=2, padding=2)),         # dilated
]


def conv_run(xs, k, o, kwargs, rng_seed=0, bias=True):
    rng = np.random.default_rng(rng_seed)
    g = kwargs.get("groups", 1)
    x = st.Tensor(rng.standard_normal(xs), requires_grad=True)
    w = st.Tensor(rng.standard_normal((k, k, xs[3] // g, o)), requires_grad=True)
    b = st.Tensor(rng.standard_normal(o), requires_grad=True) if bias else None
    y = F.conv2d(x, w, b, **kwargs)
    y.backward(np.random.default_rng(1).standard_normal(y.shape))
    return [y.data, x.grad, w.grad] + ([b.grad] if bias else [])


@pytest.mark.parametrize("xs, k, o, kwargs", CONV_CASES)
def test_conv_split_into_parts_and_blocks_equals_unsplit(xs, k, o, kwargs, whole_and_split):
    whole, split = whole_and_split(lambda: conv_run(xs, k, o, kwargs))
    for a, b in zip(whole, split):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("keep", [True, False])
def test_conv_split_gradcheck(split_everything, monkeypatch, keep):
    monkeypatch.setattr(conv, "KEEP_PATCHES_BYTES", 2**40 if keep else 0)  # kept or rebuilt patches
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 7, 6, 2))
    w = rng.standard_normal((3, 3, 2, 3))
    assert st.gradcheck(lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=1), [x, w])


def test_conv_split_in_float32_equals_unsplit_closely(split_everything):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 8, 8, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    split = F.conv2d(st.Tensor(x), st.Tensor(w), padding=1).data
    assert split.dtype == np.float32
    parallel_threads = parallel._config["threads"]
    parallel._config["threads"] = 1
    try:
        whole = F.conv2d(st.Tensor(x), st.Tensor(w), padding=1).data
    finally:
        parallel._config["threads"] = parallel_threads
    np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- memory
def test_keep_freed_memory_applies_on_glibc_linux():
    libc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
    if not (sys.platform.startswith("linux") and libc and libc.startswith("glibc")):
        pytest.skip("mallopt is glibc's")
    assert memory.keep_freed_memory() is True
    assert memory.is_applied()


def test_keep_memory_can_be_turned_off_from_the_environment():
    code = "import striate.backend.memory as m; print(m.is_applied())"
    env = dict(os.environ, STRIATE_KEEP_MEMORY="0")
    out = subprocess.run([sys.executable, "-c", "import striate; " + code], env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def bn_relu_run(training):
    rng = np.random.default_rng(5)
    x = st.Tensor(rng.standard_normal((5, 4, 3, 6)) + 1, requires_grad=True)
    g, b = (st.Tensor(rng.standard_normal(6), requires_grad=True) for _ in range(2))
    rm, rv = np.zeros(6), np.ones(6)
    y = F.relu(F.batch_norm(x, g, b, rm, rv, training=training))
    y.backward(np.random.default_rng(6).standard_normal(y.shape))
    return [y.data, x.grad, g.grad, b.grad, rm, rv]


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_and_relu_split_equal_unsplit(training, whole_and_split):
    whole, split = whole_and_split(lambda: bn_relu_run(training))
    for a, b in zip(whole, split):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def pool_run(compiled):
    from striate.backend import compiled as accel
    old, old_min = accel.set_enabled(compiled), accel.MIN_SIZE
    accel.MIN_SIZE = 0
    try:
        rng = np.random.default_rng(7)
        x = st.Tensor(rng.standard_normal((5, 9, 8, 3)), requires_grad=True)
        y = F.max_pool2d(x, 3, 2, 1)
        y.backward(np.random.default_rng(8).standard_normal(y.shape))
        return [y.data, x.grad]
    finally:
        accel.set_enabled(old)
        accel.MIN_SIZE = old_min


@pytest.mark.parametrize("compiled", [True, False])
def test_max_pool_split_equals_unsplit(compiled, whole_and_split):
    whole, split = whole_and_split(lambda: pool_run(compiled))
    for a, b in zip(whole, split):
        np.testing.assert_array_equal(b, a)


def test_signals_of_an_abandoned_run_are_not_taken_by_the_next(split_everything):
    if parallel.get_num_threads() < 2:
        pytest.skip("threadpoolctl is not installed: striate runs on one thread")
    import time
    parts = parallel.split(6, 10**6)
    parallel.map_parts(lambda s: None, parts)  # the pool exists
    pool = parallel._config["pool"]
    # a run whose caller went away (as after Ctrl-C) while a worker was still busy with its part
    pool.runs += 1
    pool.inboxes[0].put((pool.runs, lambda me: time.sleep(0.5) or 1, 1))
    start = time.perf_counter()
    assert parallel.map_parts(lambda s: (time.sleep(0.001), s.start)[1], parts) == [s.start for s in parts]
    # the caller did every part itself, and did not wait for the busy worker
    assert time.perf_counter() - start < 0.4
    time.sleep(0.5)  # the abandoned run's signal arrives; the next run must not count it as its own
    done = []

    def part(s):
        time.sleep(0.01)
        done.append(s.start)
        if s.start == parts[-1].start:
            raise RuntimeError("part failed")

    with pytest.raises(RuntimeError, match="part failed"):  # raised once every part has finished
        parallel.map_parts(part, parts)
    assert sorted(done) == [s.start for s in parts]


def test_without_threadpoolctl_striate_stays_on_one_thread(monkeypatch):
    # as after a first call found no threadpoolctl: BLAS cannot be pinned, so no threads of our own
    monkeypatch.setitem(parallel._config, "blas", False)
    monkeypatch.setitem(parallel._config, "threads", None)
    monkeypatch.setitem(parallel._config, "pool", None)
    monkeypatch.setenv("STRIATE_NUM_THREADS", "2")
    assert parallel.get_num_threads() == 1                     # the default quietly falls back
    with pytest.raises(ImportError, match="needs threadpoolctl"):
        parallel.set_num_threads(2)                            # asking explicitly is an error
    assert parallel.set_num_threads(1) == 1
