"""Hostile training data: a memmap truncated mid-run, 16-bit and oversized images, symbolic links
out of an image folder, big texts and codecs that are no text encodings. Every case gives data or
a LaminaError, within 3 GiB of address space and 20 s (`capped`)."""
from __future__ import annotations

import os
import signal
import textwrap

import numpy as np
import pytest
from conftest import capped, make_distribution

import lamina

LOCK = ".lamina-train.lock"


# -- a memmap truncated by another program while training reads it ------------------------------------

TRUNCATOR = """
    import os
    import lamina

    class Truncate(lamina.Callback):
        '''Truncates the file $TRUNCATE to 0 bytes after the first epoch: another program's doing.'''

        def on_epoch_end(self, epoch, logs):
            if epoch == 0:
                os.truncate(os.environ["TRUNCATE"], 0)

    @lamina.hookimpl
    def register_callbacks(register):
        register(Truncate)
"""


CRASHER = """
    import os
    import signal
    import lamina

    class Crash(lamina.Callback):
        '''Dies of SIGBUS after the first epoch, as a read from a map truncated mid-read does.'''

        def on_epoch_end(self, epoch, logs):
            os.kill(os.getpid(), signal.SIGBUS)

    @lamina.hookimpl
    def register_callbacks(register):
        register(Crash)
"""


def test_a_crash_python_cannot_catch_prints_the_stack_and_leaves_the_folder_free(tmp_path):
    site = make_distribution(tmp_path / "site", "lamina-crash", "0.1", {"lamina_crash": CRASHER})
    out = tmp_path / "out"
    config = tmp_path / "run.toml"
    config.write_text(textwrap.dedent(f"""
        epochs = 2
        output = "{out}"
        callbacks = ["Crash"]
        [dataset]
        name = "xor"
        [[layers]]
        type = "Linear"
        units = 2
        [loss]
        type = "CrossEntropy"
        from_logits = true
    """))
    result = capped("-m", "lamina", "train", str(config), PYTHONPATH=str(site))
    assert result.returncode == -signal.SIGBUS, (result.returncode, result.stderr[-2000:])
    assert "Fatal Python error: Bus error" in result.stderr and "on_epoch_end" in result.stderr
    config.write_text(config.read_text().replace('callbacks = ["Crash"]', ""))
    again = capped("-m", "lamina", "train", str(config), "--epochs", "1")
    assert again.returncode == 0, again.stderr[-2000:]  # the dead run's flock went with it


@pytest.fixture
def rows(tmp_path):
    """inputs.npy (2,000 x 64 float32, 500 KB: many pages) and labels.npy."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "inputs.npy", rng.normal(size=(2000, 64)).astype(np.float32))
    np.save(tmp_path / "labels.npy", rng.integers(0, 3, 2000))
    return tmp_path / "inputs.npy"


@pytest.mark.parametrize("prefetch", [0, 1])
def test_a_memmap_truncated_mid_run_stops_lamina_train_with_a_message_and_no_lock(tmp_path, rows, prefetch):
    site = make_distribution(tmp_path / "site", "lamina-truncate", "0.1", {"lamina_truncate": TRUNCATOR})
    out = tmp_path / "out"
    config = tmp_path / "run.toml"
    config.write_text(textwrap.dedent(f"""
        epochs = 3
        batch_size = 100
        prefetch = {prefetch}
        output = "{out}"
        callbacks = ["Truncate"]
        [dataset]
        name = "npy"
        path = "{rows}"
        target = "{tmp_path / 'labels.npy'}"
        [[layers]]
        type = "Linear"
        units = 3
        [loss]
        type = "CrossEntropy"
        from_logits = true
    """))
    result = capped("-m", "lamina", "train", str(config), PYTHONPATH=str(site), TRUNCATE=str(rows))
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # SIGBUS was -7 (exit 135)
    assert "Traceback" not in result.stderr
    assert f"{str(rows)!r} is 0 bytes now but was" in result.stderr and "another program" in result.stderr
    assert not (out / LOCK).exists()


@pytest.mark.parametrize("prefetch", [0, 1])
def test_a_users_memmap_truncated_mid_training_is_a_file_format_error(rows, prefetch):
    script = f"""
        import os
        import numpy as np
        import lamina

        class Truncate(lamina.Callback):
            def on_epoch_end(self, epoch, logs):
                os.truncate({str(rows)!r}, 0)

        x = np.load({str(rows)!r}, mmap_mode="r")
        model = lamina.Model([{{"type": "Linear", "units": 1}}])
        try:
            model.train(x, np.zeros((len(x), 1), np.float32), epochs=3, batch_size=100, prefetch={prefetch},
                        callbacks=[Truncate()], verbose=False)
        except lamina.FileFormatError as err:
            print(err)
            raise SystemExit(3)
    """
    result = capped("-c", textwrap.dedent(script))
    assert result.returncode == 3, (result.returncode, result.stderr[-2000:])
    assert f"x: the memory-mapped file {str(rows)!r} is 0 bytes now" in result.stdout


def test_a_memmap_read_in_full_is_not_refused(rows, tmp_path):
    x, _, _, _ = lamina.dataset("npy", path=rows, target=tmp_path / "labels.npy", test_split=0.5)
    assert np.asarray(x).shape == (1000, 64)  # the check passes while the file is whole


# -- image folders -------------------------------------------------------------------------------------


@pytest.fixture
def Image():
    return pytest.importorskip("PIL.Image", reason="image_folder reads images with Pillow: pip install Pillow")


def test_16_bit_grayscale_images_are_scaled_not_clipped(Image, tmp_path):
    levels = np.array([[0, 257, 1000], [32768, 50000, 65535]], dtype=np.uint16)
    for label in ("a", "b"):
        (tmp_path / "g" / label).mkdir(parents=True)
        image = Image.fromarray(levels)
        assert image.mode.startswith("I;16")
        image.save(tmp_path / "g" / label / "1.png")
    assert Image.open(tmp_path / "g" / "a" / "1.png").mode.startswith("I;16")  # stays 16-bit on disk
    expected = np.round(levels / 257) / 255
    for mode, channels in (("grayscale", 1), ("rgb", 3)):
        x, _ = lamina.get_registry().build("dataset", "image_folder", path=tmp_path / "g", color_mode=mode).arrays()
        got = np.asarray(x)
        assert got.shape == (2, channels, 2, 3)
        np.testing.assert_allclose(got, np.broadcast_to(expected, got.shape), atol=1e-6)
    resized, _ = lamina.get_registry().build("dataset", "image_folder", path=tmp_path / "g", color_mode="grayscale",
                                             image_size=(4, 6)).arrays()
    assert 0.3 < float(np.asarray(resized).mean()) < 0.6  # resized from the scaled pixels, not all white


def png(Image, path, size=(4, 4), shade=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, shade).save(path)


def test_a_class_folder_linked_out_of_the_folder_is_refused_unless_allowed(Image, tmp_path):
    png(Image, tmp_path / "photos" / "cat" / "1.png")
    png(Image, tmp_path / "elsewhere" / "2.png")
    (tmp_path / "photos" / "world").symlink_to("/")
    with pytest.raises(lamina.ArgumentError, match=r"class folder '.*world' is a symbolic link out of the folder, "
                                                   r"to '/'.*follow_symlinks=True"):
        lamina.dataset("image_folder", path=tmp_path / "photos")
    (tmp_path / "photos" / "world").unlink()
    (tmp_path / "photos" / "dog").symlink_to(tmp_path / "elsewhere")
    data = lamina.dataset("image_folder", path=tmp_path / "photos", follow_symlinks=True, test_split=0.0)
    assert data.metadata["classes"] == ["cat", "dog"] and len(data[0]) == 2


def test_images_linked_from_outside_are_left_out_with_a_warning_unless_allowed(Image, tmp_path):
    for name in ("1.png", "2.png"):
        png(Image, tmp_path / "photos" / "cat" / name)
    png(Image, tmp_path / "secret" / "key.png")
    (tmp_path / "photos" / "cat" / "3.png").symlink_to(tmp_path / "secret" / "key.png")
    (tmp_path / "photos" / "cat" / "more").symlink_to(tmp_path / "secret")
    (tmp_path / "photos" / "cat" / "again").symlink_to(tmp_path / "photos")  # a loop, inside: each folder once
    (tmp_path / "photos" / "cat" / "4.png").symlink_to(tmp_path / "photos" / "cat" / "1.png")  # inside: read
    registry = lamina.get_registry()
    with pytest.warns(lamina.PluginWarning, match=r"left out 2 symbolic link\(s\) that lead out of the folder.*"
                                                  r"follow_symlinks=True"):
        data = registry.build("dataset", "image_folder", path=tmp_path / "photos")
        x, _ = data.arrays()
    assert [os.path.relpath(f, tmp_path / "photos") for f in data.images().files] == [
        "cat/1.png", "cat/2.png", "cat/4.png"]  # again/ leads to photos/, whose cat/ was walked already
    allowed = registry.build("dataset", "image_folder", path=tmp_path / "photos", follow_symlinks=True)
    assert [os.path.relpath(f, tmp_path / "photos") for f in allowed.images().files] == [
        "cat/1.png", "cat/2.png", "cat/3.png", "cat/4.png", "cat/more/key.png"]
    with pytest.warns(lamina.PluginWarning, match="follow_symlinks=True"):
        _, names = registry.build("dataset", "image_folder", path=tmp_path / "photos", image_size=4).inputs()
    assert "cat/3.png" not in names and "cat/1.png" in names


def test_the_decoded_size_of_an_image_folder_is_bounded_before_anything_is_decoded(Image, tmp_path):
    for i in range(3):
        png(Image, tmp_path / "big" / "a" / f"{i}.png", size=(40, 30))
    registry = lamina.get_registry()
    with pytest.raises(lamina.ArgumentError, match=r"image_folder\(path=.*big'\): the 3 images decoded at 30x40 "
                                                   r"pixels .* with 3 channel\(s\) take 0.0 MiB, more than "
                                                   r"max_decoded_bytes=10000 .*image_size.*cache=False"):
        registry.build("dataset", "image_folder", path=tmp_path / "big", max_decoded_bytes=10_000).arrays()
    x, _ = registry.build("dataset", "image_folder", path=tmp_path / "big", max_decoded_bytes=10_000,
                          image_size=(10, 10)).arrays()
    assert np.asarray(x).shape == (3, 3, 10, 10)
    x, _ = registry.build("dataset", "image_folder", path=tmp_path / "big", max_decoded_bytes=10_000,
                          cache=False).arrays()
    assert x[:1].shape == (1, 3, 30, 40)
    with pytest.raises(lamina.ArgumentError, match="max_decoded_bytes must be a positive int"):
        registry.build("dataset", "image_folder", path=tmp_path / "big", max_decoded_bytes=0)


def test_twenty_13000_pixel_squares_without_image_size_are_refused_not_a_memory_error(Image, tmp_path):
    folder = tmp_path / "huge" / "sky"
    folder.mkdir(parents=True)
    Image.new("L", (13000, 13000), 7).save(folder / "0.png")  # one colour: 160 KB on disk
    for i in range(1, 20):
        os.link(folder / "0.png", folder / f"{i}.png")
    config = tmp_path / "run.toml"
    config.write_text(textwrap.dedent(f"""
        epochs = 1
        output = "{tmp_path / 'out'}"
        [dataset]
        name = "image_folder"
        path = "{tmp_path / 'huge'}"
        test_split = 0.0
        [[layers]]
        type = "Linear"
        units = 1
    """))
    result = capped("-m", "lamina", "train", str(config))
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    assert "the 20 images decoded at 13000x13000 pixels" in result.stderr and "9.4 GiB" in result.stderr
    assert "image_size" in result.stderr and "max_decoded_bytes" in result.stderr


# -- text ----------------------------------------------------------------------------------------------

MEASURE = """
    import resource
    import sys
    import lamina

    lamina.dataset("xor")  # lamina and its plugins loaded before the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    x, y, x_test, y_test = lamina.dataset("text", path=sys.argv[1], seq_len=64)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert len(x) * 64 > 0.85 * int(sys.argv[2])
    print((after - before) / int(sys.argv[2]))
"""


def test_a_text_costs_a_few_bytes_per_character_not_forty(tmp_path):
    path = tmp_path / "long.txt"
    rng = np.random.default_rng(0)
    chars = 8_000_000
    line = "".join(rng.choice(list("abcdefgh éüñ\u2603"), size=chars - 1)) + "\n"  # one long line, some non-ASCII
    path.write_text(line, encoding="utf-8")
    result = capped("-c", textwrap.dedent(MEASURE), str(path), str(chars))
    assert result.returncode == 0, result.stderr[-2000:]
    per_character = float(result.stdout)
    assert per_character < 12  # 8 bytes (one int64 id) and chunks; it was ~38


@pytest.mark.parametrize("dataset", ["text", "csv"])
@pytest.mark.parametrize("encoding", ["rot13", "hex", "zlib", "base64", "bz2", "uu", "unicode_escape",
                                      "raw_unicode_escape"])
def test_codecs_that_are_not_text_encodings_are_refused_by_name(tmp_path, dataset, encoding):
    path = tmp_path / "data.txt"
    path.write_text("a,1\nb,0\n" * 100)
    with pytest.raises(lamina.ArgumentError, match=rf"{dataset}\(encoding='{encoding}'\): .* is a codec but not a "
                                                   r"text encoding.*e\.g\. 'utf-8', 'latin-1'"):
        lamina.dataset(dataset, path=str(path), encoding=encoding)
