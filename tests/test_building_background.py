"""The training background: random per step, transparent pixels over it, the far-field sphere."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.test_building_scene import make_scene

from coseg.building import BuildConfig, train
from coseg.building.step import TrainingTarget, training_background
from coseg.errors import CosegError
from coseg.run import RunDir


def test_training_background_is_random_per_step_and_reproducible():
    fixed = torch.zeros(3)
    c = BuildConfig(seed=3)
    a, b = training_background(c, 7, fixed), training_background(c, 8, fixed)
    assert not torch.equal(a, b) and torch.equal(a, training_background(c, 7, fixed))
    assert ((a >= 0) & (a <= 1)).all()
    assert training_background(BuildConfig(background="scene"), 7, fixed) is fixed
    with pytest.raises(CosegError, match="background"):
        BuildConfig(background="green")


def test_transparent_pixels_train_towards_the_step_background():
    rgb = torch.tensor([[[0.5, 0.25, 0.0], [0.0, 0.0, 0.0]]])  # premultiplied
    alpha = torch.tensor([[[0.5], [0.0]]])
    target = TrainingTarget(rgb, alpha)
    bg = torch.tensor([0.2, 0.4, 0.6])
    torch.testing.assert_close(target.over(bg), torch.tensor([[[0.6, 0.45, 0.3], [0.2, 0.4, 0.6]]]))
    assert TrainingTarget(rgb, None).over(bg) is rgb


def _white_sky_scene(root):
    """The tiny scene with its empty background (0.05 grey) turned white, as a bright sky."""
    import imageio.v3 as iio

    scene = make_scene(root)
    for cam in scene.cameras:
        img = iio.imread(cam.image_path)
        sky = (img == round(0.05 * 255)).all(axis=2)
        img[sky] = 255
        iio.imwrite(cam.image_path, img)
    return scene


def test_far_field_covers_the_sky_of_novel_views(tmp_path):
    from coseg.building.evaluate import RenderContext

    scene = _white_sky_scene(tmp_path / "scene")
    settings = dict(iterations=40, init_max_points=150, max_gaussians=3000, densify_start=10,
                    densify_interval=10, opacity_reset_interval=1000, max_sh_degree=0, log_every=40,
                    checkpoint_every=40)
    sky_alpha = {}
    for spacing in (0.0, 4.0):
        run = RunDir(tmp_path / f"far{spacing}")
        list(train(scene, BuildConfig(far_field_spacing=spacing, **settings), run))
        init = run.read_config()["building"]["init"]
        assert (init["far_field"] > 0) == (spacing > 0)
        ctx = RenderContext.load(run, scene)
        values = []
        for cam in scene.test_cameras:
            sky = scene.load_image(cam).min(axis=2) > 0.99
            values.append(ctx.render(cam)[1][..., 0].numpy()[sky].mean())
        sky_alpha[spacing] = float(np.mean(values))
    assert sky_alpha[4.0] > sky_alpha[0.0] + 0.1, sky_alpha


def test_pixels_outside_the_photo_are_never_trained_towards_the_background():
    from coseg.building.losses import photometric_loss

    gen = torch.Generator().manual_seed(1)
    rgb = torch.rand(12, 16, 3, generator=gen)
    alpha = torch.ones(12, 16, 1)
    alpha[:, :4] = 0.0  # the border is transparent too: over() puts the background there
    valid = torch.ones(12, 16, 1, dtype=torch.bool)
    valid[:, :4] = False
    target = TrainingTarget(rgb * alpha, alpha, valid)
    img = torch.rand(12, 16, 3, generator=gen, requires_grad=True)
    for seed in (0, 1):
        bg = training_background(BuildConfig(seed=seed), 5, torch.zeros(3))
        for fused in (True, False):
            loss, _, _ = photometric_loss(img, target.over(bg), 0.8, target.valid, fused=fused)
            (grad,) = torch.autograd.grad(loss, img)
            assert grad[:, :4].abs().max() == 0 and grad[:, 4:].abs().max() > 0


def test_far_field_colours_come_from_pixels_that_see_the_photo(tmp_path):
    from coseg.building.farfield import far_field_gaussians

    scene = make_scene(tmp_path / "scene")
    cams = scene.train_cameras
    images = [np.full((c.height, c.width, 3), 0.8, np.float32) for c in cams]
    valid = []
    for image in images:
        image[:, : image.shape[1] // 2] = 0.0  # black border of an undistorted view
        mask = np.ones(image.shape[:2], bool)
        mask[:, : image.shape[1] // 2] = False
        valid.append(mask)
    far = far_field_gaussians(cams, images, scene.extent(), 8.0, 10.0, 0.1, 0, valid)
    assert far is not None
    np.testing.assert_allclose(far.colors, 0.8, atol=1e-5)
