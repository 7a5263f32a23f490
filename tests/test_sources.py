"""Array-likes train without being loaded: memmaps, h5py-like and zarr-like sources, read one
batch at a time, with the same weights as the same data in memory; prefetch on a background
thread; errors and interrupts from the loader."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import lamina
from lamina.training.sources import Lazy, is_lazy

RNG = np.random.default_rng(0)
X = (RNG.random((150, 12)) * 255).astype(np.uint8)
Y = (X[:, 0] > 127).astype(np.int64)


class Increasing:
    """Like an h5py dataset: integer indices must be increasing; counts the rows each read returns."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.reads = array, array.shape, array.dtype, []

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index):
        if isinstance(index, np.ndarray) and np.any(np.diff(index) <= 0):
            raise TypeError("Indexing elements must be in increasing order")
        out = self.array[index]
        self.reads.append(len(out) if np.ndim(out) else 1)
        return out


class Orthogonal:
    """Like a zarr array: plain indexing takes ints and slices only; integer arrays go through .oindex."""

    def __init__(self, array):
        self.array, self.shape, self.dtype = array, array.shape, array.dtype
        self.oindex = self

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index):
        return self.array[index]


class OneRowAtATime(Orthogonal):
    """Only ints and slices, no .oindex: read row by row."""

    oindex = None

    def __init__(self, array):
        super().__init__(array)
        self.oindex = None

    def __getitem__(self, index):
        if isinstance(index, np.ndarray):
            raise IndexError("only integers and slices")
        return self.array[index]


def train(x, y=Y, seed=0, **options):
    lamina.seed(seed)
    model = lamina.Model([lamina.layer("Linear", 8), "Relu", lamina.layer("Linear", 2)])
    options = {"optim": "Adam", "loss": lamina.loss("CrossEntropy", from_logits=True), "epochs": 3, "batch_size": 32,
               "verbose": False, **options}
    history = model.train(x, y, **options)
    return model, history


def weights(model):
    return [p.value.copy() for p in model.parameters().values()]


def test_what_counts_as_an_array_like(tmp_path):
    np.save(tmp_path / "x.npy", X)
    assert is_lazy(np.load(tmp_path / "x.npy", mmap_mode="r"))  # a memmap is read lazily, an ndarray is not
    assert not is_lazy(X) and not is_lazy([[1, 2]]) and not is_lazy((1, 2)) and not is_lazy(3.0)
    assert is_lazy(Increasing(X)) and is_lazy(Orthogonal(X))
    series = type("Series", (Increasing,), {"__module__": "pandas.core.series"})(X[:, 0])
    assert not is_lazy(series)  # pandas indexes by label: converted whole, as before


@pytest.mark.parametrize("wrap", [lambda path: np.load(path, mmap_mode="r"), lambda path: Increasing(np.load(path)),
                                  lambda path: Orthogonal(np.load(path)), lambda path: OneRowAtATime(np.load(path))])
@pytest.mark.parametrize("prefetch", [None, 0, 2])
def test_array_likes_train_to_the_same_weights_as_the_data_in_memory(tmp_path, wrap, prefetch):
    np.save(tmp_path / "x.npy", X)
    expected, history = train(X.astype(np.float32), validation_split=0.2)
    model, lazy_history = train(wrap(tmp_path / "x.npy"), validation_split=0.2, prefetch=prefetch)
    for a, b in zip(weights(expected), weights(model)):
        np.testing.assert_array_equal(a, b)
    assert lazy_history.history == history.history  # the validation tail too


def test_only_one_batch_is_read_at_a_time_and_in_increasing_order():
    source = Increasing(X)
    model, _ = train(source, validation_split=0.2)
    assert max(source.reads) <= 32  # never the whole array
    before = len(source.reads)
    predictions = model.predict(source, batch_size=50)
    assert max(source.reads[before:]) <= 50 and predictions.shape == (150, 2)
    # float32 in batches of 50 and in one: BLAS may block the sums differently (~1e-5 relative),
    # and a logit near 0 keeps the rounding error of its summands (inputs up to 255).
    expected = model.predict(X.astype(np.float32))
    np.testing.assert_allclose(predictions, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    assert model.evaluate(source, Y, batch_size=40) == pytest.approx(model.evaluate(X.astype(np.float32), Y), rel=1e-5)


def test_targets_can_be_lazy_too_and_batches_are_converted_to_the_model_dtype(tmp_path):
    np.save(tmp_path / "y.npy", Y)
    np.save(tmp_path / "x.npy", X.astype(np.float64))
    x_file, y_file = np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
    expected, _ = train(X.astype(np.float64))
    model, _ = train(x_file, y_file)
    assert model.dtype == np.float64  # a float64 file builds a float64 model, as the array in memory would
    for a, b in zip(weights(expected), weights(model)):
        np.testing.assert_array_equal(a, b)
    lamina.seed(0)
    narrow = lamina.Model([lamina.layer("Linear", 8), "Relu", lamina.layer("Linear", 2)])
    narrow(X[:1].astype(np.float32))  # built in float32: the file's batches become float32
    narrow.train(x_file, y_file, loss=lamina.loss("CrossEntropy", from_logits=True), epochs=1, batch_size=32,
                 verbose=False)
    assert narrow.dtype == np.float32 and narrow.predict(x_file).dtype == np.float32


def test_lazy_validation_data_and_shape_checks(tmp_path):
    model, history = train(Increasing(X[:100]), Y[:100], validation_data=(Increasing(X[100:]), Y[100:]))
    assert len(history["val_loss"]) == 3
    with pytest.raises(lamina.ShapeError, match="x and y have shapes \\(150, 12\\) and \\(149,\\)"):
        train(Increasing(X), Y[:-1])
    with pytest.raises(lamina.ShapeError, match="x has no rows"):
        train(Increasing(X[:0]), Y[:0])


class Broken(Increasing):
    def __getitem__(self, index):
        if 120 in np.arange(len(self))[index]:
            raise OSError("disk error at row 120")
        return super().__getitem__(index)


class NamedFailure(Increasing):
    def __getitem__(self, index):
        raise lamina.FileFormatError("cat.png is not an image")


@pytest.mark.parametrize("prefetch", [0, 1])
def test_a_loader_error_surfaces_in_the_main_thread_naming_the_rows(prefetch):
    with pytest.raises(lamina.LaminaError,
                       match=r"reading the rows of training batch \d+/5 failed: OSError: disk error at row 120"):
        train(Broken(X), shuffle=False, prefetch=prefetch)
    with pytest.raises(lamina.FileFormatError, match="cat.png is not an image"):  # lamina's own errors unchanged
        train(NamedFailure(X), prefetch=1)
    assert not [t for t in threading.enumerate() if t.name == "lamina-prefetch"]


class Interrupt(lamina.Callback):
    def on_train_batch_end(self, batch, logs):
        if batch == 1:
            raise KeyboardInterrupt


def test_an_interrupt_stops_the_loader_thread():
    with pytest.raises(KeyboardInterrupt):
        train(Increasing(X), callbacks=[Interrupt()], prefetch=2)
    assert not [t for t in threading.enumerate() if t.name == "lamina-prefetch" and t.is_alive()]


def test_prefetch_is_checked():
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(lamina.ArgumentError, match="prefetch is how many batches are read ahead"):
            train(X.astype(np.float32), prefetch=bad)


def test_lazy_views_read_the_rows_asked_for():
    view = Lazy(Increasing(X), "test").view(10, 60)
    assert len(view) == 50 and view.shape == (50, 12) and view.dtype == np.uint8
    rows = np.array([7, 3, 40, 0])
    np.testing.assert_array_equal(view.read(rows), X[10:60][rows])
    np.testing.assert_array_equal(view.read(slice(5, 9)), X[15:19])
    np.testing.assert_array_equal(view.read(slice(0, 10, 3)), X[10:20:3])
    with pytest.raises(lamina.ShapeError, match="has len\\(\\) 3 but shape \\(4,\\)"):
        Lazy(type("Odd", (), {"__len__": lambda self: 3, "__getitem__": lambda self, i: 0, "shape": (4,),
                              "dtype": np.dtype(np.float32)})(), "test")


RSS_SCRIPT = textwrap.dedent("""
    import sys, threading, time
    import numpy as np
    import lamina

    def status():
        fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["RssAnon"].split()[0]) / 1024

    peak = [0.0, 0.0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[:] = [max(p, v) for p, v in zip(peak, status())]
            time.sleep(0.002)

    import lamina.training.sources
    lamina.training.sources.DROP_ABOVE = 0  # a small file, read as a big one would be: its pages dropped
    x = np.load(sys.argv[1], mmap_mode="r")
    y = np.zeros(len(x), dtype=np.int64)
    lamina.seed(0)
    model = lamina.Model([lamina.layer("Linear", 10)])
    model(x[:2])
    base = status()
    sampler = threading.Thread(target=sample)
    sampler.start()
    model.train(x, y, loss=lamina.loss("CrossEntropy", from_logits=True), epochs=1, batch_size=1024, verbose=False)
    done.set()
    sampler.join()
    print(peak[0] - base[0], peak[1] - base[1], status()[0] - base[0])  # MiB: peak RSS, peak anonymous, after
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_training_from_a_memmap_does_not_load_it(tmp_path):
    """160 MB of uint8 rows (640 MB as float32 in memory), read as files above DROP_ABOVE (256 MB)
    are: lamina's own memory grows by a few batches, the file's pages are dropped as read."""
    data = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=(200_000, 800))
    data[:] = 7
    data.flush()
    del data
    script = tmp_path / "rss.py"
    script.write_text(RSS_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "x.npy")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    peak, anonymous, after = (float(v) for v in result.stdout.split())
    assert anonymous < 60, f"lamina's memory grew by {anonymous:.0f} MiB training from a 160 MB memmap"
    assert peak < 100, f"the process grew by {peak:.0f} MiB at its peak"
    assert after < 20, f"{after:.0f} MiB of the file stayed mapped after training"
