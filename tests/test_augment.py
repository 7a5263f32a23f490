"""The augmentation layers: identity in inference, random in training (and reproducible under
lamina.seed), their probabilities, RandomCrop's shapes and center crop, argument and shape
errors, the conformance kit, and a model that trains with them on the digits."""
from __future__ import annotations

import numpy as np
import pytest

import lamina
from lamina.plugins import GaussianNoise, RandomCrop, RandomErasing, RandomFlip, RandomTranslation
from lamina.testing import check_plugin, format_failures

CLASSES = [RandomFlip, RandomCrop, RandomTranslation, GaussianNoise, RandomErasing]
IMAGES = np.random.default_rng(0).normal(size=(16, 3, 8, 8))

# name -> a factory of a layer that changes every sample in training (probabilities at 1)
CHANGING = {
    "RandomFlip": lambda: RandomFlip("both", p=1.0),
    "RandomCrop": lambda: RandomCrop(8, padding=2),
    "RandomTranslation": lambda: RandomTranslation(3),
    "GaussianNoise": lambda: GaussianNoise(0.5),
    "RandomErasing": lambda: RandomErasing(p=1.0, scale=(0.1, 0.3)),
}


def training(layer):
    layer.training = True
    return layer


# -- inference and training ------------------------------------------------------------------------


@pytest.mark.parametrize("name", CHANGING)
def test_in_inference_the_layer_returns_its_input_itself(name):
    layer = CHANGING[name]()
    assert layer(IMAGES) is IMAGES
    grad = np.ones_like(IMAGES)
    assert layer.backward(grad) is grad
    assert lamina.get_registry().get("layer", name).cls is type(layer)


@pytest.mark.parametrize("name", CHANGING)
def test_in_training_the_layer_changes_its_input_and_keeps_its_shape(name):
    lamina.seed(0)
    y = training(CHANGING[name]())(IMAGES)
    assert y.shape == IMAGES.shape
    changed = [not np.array_equal(y[i], IMAGES[i]) for i in range(len(IMAGES))]
    assert sum(changed) >= len(IMAGES) - 3  # a translation or crop may draw a zero shift, rarely


@pytest.mark.parametrize("name", CHANGING)
def test_the_same_seed_draws_the_same_and_the_next_call_draws_anew(name):
    layer = training(RandomFlip("both") if name == "RandomFlip" else CHANGING[name]())  # p=1 flips every time
    lamina.seed(3)
    first, second = layer(IMAGES), layer(IMAGES)
    lamina.seed(3)
    np.testing.assert_array_equal(layer(IMAGES), first)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("name", CHANGING)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_input_dtype_is_kept_in_both_modes(name, dtype):
    layer = training(CHANGING[name]())
    x = IMAGES.astype(dtype)
    y = layer(x)
    assert y.dtype == dtype and layer.backward(np.ones_like(y)).dtype == dtype
    layer.training = False
    assert layer(x).dtype == dtype


@pytest.mark.parametrize("name", CHANGING)
def test_a_models_first_layer_skips_the_input_gradient(name):
    layer = training(CHANGING[name]())
    layer.needs_input_grad = False
    y = layer(IMAGES)
    assert layer.backward(np.ones_like(y)) is None


@pytest.mark.parametrize("name", CHANGING)
def test_backward_before_forward_says_so(name):
    with pytest.raises(lamina.LaminaError, match="backward was called before forward"):
        CHANGING[name]().backward(np.ones_like(IMAGES))


# -- RandomFlip ----------------------------------------------------------------------------------


def test_random_flip_flips_about_p_of_the_samples_and_exactly_those():
    lamina.seed(0)
    x = np.random.default_rng(1).normal(size=(1000, 1, 2, 3))
    y = training(RandomFlip(p=0.5))(x)
    flipped = np.array([np.array_equal(y[i], x[i, :, :, ::-1]) for i in range(len(x))])
    kept = np.array([np.array_equal(y[i], x[i]) for i in range(len(x))])
    assert np.all(flipped ^ kept)
    assert 440 <= flipped.sum() <= 560
    lamina.seed(0)
    y = training(RandomFlip(p=0.1))(x)
    assert 60 <= sum(not np.array_equal(y[i], x[i]) for i in range(len(x))) <= 140


def test_random_flip_modes_flip_their_axes():
    x = np.arange(2 * 1 * 3 * 4, dtype=np.float64).reshape(2, 1, 3, 4)
    np.testing.assert_array_equal(training(RandomFlip("horizontal", p=1.0))(x), x[:, :, :, ::-1])
    np.testing.assert_array_equal(training(RandomFlip("vertical", p=1.0))(x), x[:, :, ::-1, :])
    signals = x.reshape(2, 3, 4)
    np.testing.assert_array_equal(training(RandomFlip(p=1.0))(signals), signals[:, :, ::-1])
    lamina.seed(0)
    y = training(RandomFlip("both", p=0.5))(np.repeat(x[:1], 400, axis=0))
    seen = {(np.array_equal(s, x[0, :, ::-1]) or np.array_equal(s, x[0, :, ::-1, ::-1]),
             np.array_equal(s, x[0, :, :, ::-1]) or np.array_equal(s, x[0, :, ::-1, ::-1])) for s in y}
    assert seen == {(False, False), (True, False), (False, True), (True, True)}


def test_random_flip_gradient_is_flipped_back():
    layer = training(RandomFlip("both", p=0.5))
    y = layer(IMAGES)
    np.testing.assert_array_equal(layer.backward(y), IMAGES)  # the flip undoes itself


# -- RandomCrop ----------------------------------------------------------------------------------


def test_random_crop_gives_windows_of_the_padded_input_and_a_center_crop_in_inference():
    x = np.random.default_rng(2).normal(size=(50, 2, 6, 7))
    layer = RandomCrop((4, 5), padding=1)
    np.testing.assert_array_equal(layer(x), x[:, :, 1:5, 1:6])  # padded 8 x 9: the center starts at 2, 2
    lamina.seed(0)
    y = training(layer)(x)
    assert y.shape == (50, 2, 4, 5)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    places = set()
    for i in range(len(x)):
        found = [(t, s) for t in range(5) for s in range(5) if np.array_equal(y[i], padded[i, :, t : t + 4, s : s + 5])]
        assert found, f"sample {i} is no window of the padded input"
        places.add(found[0])
    assert len(places) > 10


def test_random_crop_of_the_input_size_with_padding_is_the_identity_in_inference_and_a_shift_in_training():
    layer = RandomCrop(8, padding=4)  # the CIFAR recipe, on 8 x 8 images
    assert layer(IMAGES) is IMAGES
    lamina.seed(0)
    y = training(layer)(IMAGES)
    assert y.shape == IMAGES.shape and not np.array_equal(y, IMAGES)


def test_random_crop_center_reaches_into_the_padding_when_the_size_is_larger_than_the_input():
    x = np.ones((2, 1, 4, 4))
    y = RandomCrop(5, padding=1)(x)  # padded 6 x 6, center window from 0: one row and column of padding
    assert y.shape == (2, 1, 5, 5)
    assert not y[:, :, 0].any() and not y[:, :, :, 0].any() and y[:, :, 1:, 1:].all()


def test_random_crop_backward_scatters_into_the_window_and_drops_the_padding():
    x = np.random.default_rng(3).normal(size=(4, 2, 5, 5))
    layer = training(RandomCrop(3, padding=2))
    lamina.seed(1)
    y = layer(x)
    grad = layer.backward(np.ones_like(y))
    assert grad.shape == x.shape
    for i in range(len(x)):  # ones where a pixel of the input is in the window; the padding dropped
        np.testing.assert_array_equal(grad[i], np.isin(x[i], y[i]))


def test_a_crop_larger_than_the_padded_input_is_a_shape_error_that_names_the_sizes():
    with pytest.raises(lamina.ShapeError,
                       match=r"RandomCrop\(size=10, padding=1\): the padded input is 10 x 8 .*smaller than the crop of "
                             r"10 x 10"):
        RandomCrop(10, padding=1)(np.zeros((2, 1, 8, 6)))
    with pytest.raises(lamina.ShapeError,
                       match=r"RandomCrop\(size=4\) expects images laid out as \(batch, channels, height, width\)"):
        RandomCrop(4)(np.zeros((2, 64)))


# -- RandomTranslation ---------------------------------------------------------------------------


def test_random_translation_shifts_by_at_most_max_shift_and_fills_with_zeros():
    x = np.zeros((200, 1, 7, 7))
    x[:, :, 3, 3] = 1.0  # one lit pixel in the middle
    lamina.seed(0)
    y = training(RandomTranslation((1, 3)))(x)
    assert y.shape == x.shape and np.all(y.sum(axis=(1, 2, 3)) == 1)  # moved, never lost, nothing else lit
    rows, cols = np.nonzero(y[:, 0])[1:]
    assert set(rows - 3) == {-1, 0, 1} and set(cols - 3) == {-3, -2, -1, 0, 1, 2, 3}


def test_random_translation_moves_content_out_of_the_image():
    x = np.ones((100, 1, 4, 4))
    lamina.seed(0)
    y = training(RandomTranslation(2))(x)
    assert (y.sum(axis=(1, 2, 3)) < 16).mean() > 0.8  # most samples moved, their vacated pixels zero
    assert set(np.unique(y)) == {0.0, 1.0}


# -- GaussianNoise -------------------------------------------------------------------------------


def test_gaussian_noise_has_the_asked_spread_on_any_shape_and_an_identity_gradient():
    lamina.seed(0)
    layer = training(GaussianNoise(0.3))
    x = np.zeros((500, 7, 3))
    y = layer(x)
    assert abs(y.mean()) < 0.01 and y.std() == pytest.approx(0.3, rel=0.02)
    grad = np.random.default_rng(0).normal(size=y.shape)
    np.testing.assert_array_equal(layer.backward(grad), grad)
    assert layer(np.ones((3, 2), dtype=np.int64)).dtype == lamina.DEFAULT_DTYPE


# -- RandomErasing -------------------------------------------------------------------------------


def test_random_erasing_sets_one_rectangle_in_every_channel_to_value_with_probability_p():
    lamina.seed(0)
    x = np.random.default_rng(4).uniform(1, 2, size=(1000, 2, 10, 10))
    layer = training(RandomErasing(p=0.5, value=-3.0))
    y = layer(x)
    erased = y == -3.0
    assert np.all((y == x) | erased)
    assert np.array_equal(erased[:, 0], erased[:, 1])  # the same pixels in every channel
    hit = erased[:, 0].any(axis=(1, 2))
    assert 440 <= hit.sum() <= 560
    areas = []
    for mask in erased[hit, 0]:
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        assert mask.sum() == len(rows) * len(cols)  # a filled rectangle
        assert len(rows) < 10 and len(cols) < 10
        areas.append(mask.sum() / 100)
    assert 0.01 <= min(areas) and max(areas) <= 0.45  # scale=(0.02, 0.33), rounded to whole pixels
    grad = layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(grad, ~erased)


# -- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RandomFlip("sideways"),
         r"RandomFlip\(mode='sideways'\): mode must be 'horizontal', 'vertical' or 'both'"),
        (lambda: RandomFlip("horizontl"), r"Did you mean 'horizontal'\?"),
        (lambda: RandomFlip(p=1.5), r"RandomFlip\(p=1.5\): p must be a number in \[0, 1\], got 1.5 \(float\)"),
        (lambda: RandomFlip(p="half"), r"RandomFlip\(p='half'\): p must be a number in \[0, 1\]"),
        (lambda: RandomCrop(0), r"RandomCrop\(size=0\): size must be an int >= 1 or a pair of them, e.g. size=3"),
        (lambda: RandomCrop((4, 4, 4)), r"RandomCrop\(size=\(4, 4, 4\)\): size must be an int >= 1 or a pair"),
        (lambda: RandomCrop(4, padding=-1), r"RandomCrop\(padding=-1\): padding must be an int >= 0 or a pair"),
        (lambda: RandomCrop(4.0), r"RandomCrop\(size=4.0\): size must be an int"),
        (lambda: RandomTranslation(-2), r"RandomTranslation\(max_shift=-2\): max_shift must be an int >= 0"),
        (lambda: RandomTranslation(0.5), r"RandomTranslation\(max_shift=0.5\): max_shift must be an int >= 0"),
        (lambda: GaussianNoise(-0.1),
         r"GaussianNoise\(std=-0.1\): std must be a number >= 0, .*e.g. GaussianNoise\(std=0.1\)"),
        (lambda: GaussianNoise(float("nan")), r"GaussianNoise\(std=nan\): std must be a number >= 0"),
        (lambda: RandomErasing(p=-0.5), r"RandomErasing\(p=-0.5\): p must be a number in \[0, 1\]"),
        (lambda: RandomErasing(scale=(0.5, 0.1)),
         r"RandomErasing\(scale=\(0.5, 0.1\)\): scale must be \(low, high\) with 0 < low <= high <= 1.*e.g. "
         r"RandomErasing\(scale=\(0.02, 0.33\)\)"),
        (lambda: RandomErasing(scale=(0.0, 0.3)), r"scale must be \(low, high\) with 0 < low"),
        (lambda: RandomErasing(scale=0.3),
         r"RandomErasing\(scale=0.3\): scale must be a pair \(low, high\) of area fractions, got 0.3 \(float\)"),
        (lambda: RandomErasing(value="black"),
         r"RandomErasing\(value='black'\): value must be a finite number, got 'black' \(str\); pass e.g. "
         r"RandomErasing\(value=0.0\)"),
        (lambda: RandomErasing(value=float("inf")), r"RandomErasing\(value=inf\): value must be a finite number"),
    ],
)
def test_bad_arguments_are_argument_errors_that_say_what_to_pass(make, message):
    with pytest.raises(lamina.ArgumentError, match=message):
        make()


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (RandomFlip(), (2, 64),
         r"RandomFlip\(\) expects \(batch, channels, height, width\) or \(batch, channels, length\), "
         r"got shape \(2, 64\)"),
        (RandomFlip("vertical"), (2, 3, 8),
         r"RandomFlip\(mode='vertical'\) expects \(batch, channels, height, width\), got shape \(2, 3, 8\)"),
        (RandomTranslation(1), (2, 3, 8), r"RandomTranslation\(max_shift=1\) expects images laid out as"),
        (RandomErasing(), (2, 8, 8, 1, 1), r"RandomErasing\(\) expects images laid out as"),
    ],
)
@pytest.mark.parametrize("mode", [False, True], ids=["inference", "training"])
def test_inputs_that_are_not_images_are_shape_errors_in_both_modes(layer, shape, message, mode):
    layer.training = mode
    with pytest.raises(lamina.ShapeError, match=message):
        layer(np.zeros(shape))


def test_configs_round_trip_and_lists_come_back_as_given():
    for layer in [RandomFlip("both", p=0.2), RandomCrop([6, 5], padding=(1, 2)), RandomTranslation([1, 2]),
                  GaussianNoise(0.3), RandomErasing(0.4, [0.1, 0.2], 1)]:
        rebuilt = type(layer)(**layer.get_config())
        assert repr(rebuilt) == repr(layer)
    assert repr(RandomErasing(0.4, [0.1, 0.2], 1)) == "RandomErasing(p=0.4, scale=(0.1, 0.2), value=1.0)"


# -- the conformance kit -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_layer_passes_the_conformance_kit(cls):
    results = check_plugin(cls)
    assert all(r.ok is not False for r in results), format_failures(results)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_conformance_cases_stay_valid_as_the_last_axis_grows(cls):
    """The property tests redraw the batch and grow the last axis by up to 3."""
    for case in cls.conformance_cases:
        for extra in range(4):
            for batch in (1, 5):
                shape = (batch, *case.shape[1:-1], case.shape[-1] + extra)
                for mode in (False, True):
                    layer = cls(**case.kwargs)
                    layer.training = mode
                    assert layer(np.ones(shape)).shape[0] == batch


# -- in a model ----------------------------------------------------------------------------------


def test_a_model_with_augmentation_trains_on_the_digits_and_predicts_without_it():
    lamina.seed(0)
    x, y, x_test, y_test = lamina.dataset("digits", flatten=False)
    # a shift of one pixel in 8 is a lot for an MLP: one shifting layer, and mild others
    augment = [RandomCrop(8, padding=1), RandomFlip(p=0.05), RandomErasing(p=0.2, scale=(0.02, 0.1)),
               GaussianNoise(0.05)]
    rest = [lamina.layer("Flatten"), lamina.layer("Linear", 64), lamina.layer("Relu"), lamina.layer("Linear", 10),
            lamina.layer("Softmax")]
    model = lamina.Model([*augment, *rest])
    history = model.train(x, y, optim=lamina.optimizer("Adam", lr=0.01), loss="CrossEntropy", metrics=["accuracy"],
                          epochs=5, batch_size=64, verbose=False)
    assert history["loss"][-1] < history["loss"][0]
    state = lamina.rng().bit_generator.state
    pred = model.predict(x_test)
    assert lamina.rng().bit_generator.state == state  # inference draws nothing
    np.testing.assert_array_equal(model.predict(x_test), pred)
    np.testing.assert_array_equal(lamina.Model(rest).predict(x_test), pred)  # the same as without augmentation
    assert (pred.argmax(axis=1) == y_test).mean() > 0.8
