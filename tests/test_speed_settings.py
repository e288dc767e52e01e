"""The CUDA speed settings (bf16 autocast, channels_last, torch.compile) run on the CPU with
``cpu_speed_settings``, so their code path is tested without a GPU; without it a CPU run is
unchanged (fp32, contiguous, eager). The device gate is gans/dcgan.py's ``speed_settings``."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from gans import dcgan
from gans.data import DataOrder, ImageData, ImageDataConfig
from suite.cli import main
from suite.optimizers import OptimizerSpec
from suite.run.device import SpeedSettings, speed_settings
from tests.helpers import needs_shared
from vae import vae

pytestmark = pytest.mark.usefixtures("one_thread")

ADAM = OptimizerSpec(optimizer="adam", lr=1.0e-3)
SGD = OptimizerSpec(optimizer="sgd", lr=1.0e-2)


def image_data(count: int, channels: int, size: int) -> ImageData:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, channels, size, size), generator=generator)
    images = images.to(torch.uint8)
    labels = torch.zeros(count, dtype=torch.long)
    return ImageData(images, labels, images[:16], labels[:16], ["x"], "toy", "toy")


def gan_config(**changes) -> dcgan.Config:
    config = dcgan.Config(
        data=ImageDataConfig(source="folder", path="unused", image_size=32, channels=3),
        generator_width=4,
        discriminator_width=4,
        latent_dim=8,
        batch_size=8,
    )
    return replace(config, **changes)


def vae_config(**changes) -> vae.Config:
    # Three channels: a one-channel NCHW tensor is channels_last-contiguous as well, so a format
    # check on it could not fail.
    config = vae.Config(
        data=ImageDataConfig(source="folder", path="unused", image_size=28, channels=3),
        width=4,
        hidden=16,
        latent_dim=4,
        batch_size=8,
        likelihood="gaussian",  # the decoder's log_scale is then trained too
    )
    return replace(config, **changes)


def image_weights(*modules: nn.Module) -> list[torch.Tensor]:
    return [p for module in modules for p in module.parameters() if p.dim() == 4]


def record_output_dtypes(kinds: tuple[type, ...], *modules: nn.Module) -> list[torch.dtype]:
    """Hooks every submodule of ``kinds``; the returned list fills with their outputs' dtypes."""
    dtypes: list[torch.dtype] = []
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, kinds):
                layer.register_forward_hook(lambda _m, _i, output: dtypes.append(output.dtype))
    return dtypes


def parameters(*modules: nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{index}.{name}": p.detach().clone()
        for index, module in enumerate(modules)
        for name, p in module.named_parameters()
    }


def assert_all_changed_float32(before: dict[str, torch.Tensor], *modules: nn.Module) -> None:
    after = parameters(*modules)
    assert after.keys() == before.keys()
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert unchanged == []
    assert {p.dtype for p in after.values()} == {torch.float32}
    assert all(torch.isfinite(p).all() for p in after.values())


# --- the device gate ---------------------------------------------------------------------------


def test_speed_settings_apply_on_cuda_and_on_the_cpu_only_when_asked():
    config = gan_config(compile=True)  # amp and channels_last are on by default
    on = dict(amp=True, channels_last=True, compile=True)
    off = dict(amp=False, channels_last=False, compile=False)
    for device in ("cuda", "cuda:1"):  # the gate only reads the device type: no GPU needed
        assert speed_settings(config, device) == SpeedSettings("cuda", **on)
    assert speed_settings(config, "cpu") == SpeedSettings("cpu", **off)
    assert speed_settings(config, "meta") == SpeedSettings("meta", **off)
    cpu = speed_settings(replace(config, cpu_speed_settings=True), "cpu")
    assert cpu == SpeedSettings("cpu", **on)
    with cpu.autocast():  # the run's device type, in bf16
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")
    # The VAE uses the same gate; its amp is off by default, and the MLP gets no channels_last.
    mlp = vae_config(architecture="mlp", cpu_speed_settings=True, amp=True)
    model = vae.build(mlp, 3, "cpu")
    assert model.speed == SpeedSettings("cpu", amp=True, channels_last=False, compile=False)
    assert vae.build(vae_config(cpu_speed_settings=True), 3, "cpu").speed.amp is False


# --- on: bf16 autocast and channels_last on the CPU ----------------------------------------


@pytest.mark.parametrize("loss", ["bce", "hinge"])
def test_dcgan_cpu_speed_settings_bf16_channels_last_float32_losses(loss):
    config = gan_config(cpu_speed_settings=True, loss=loss)
    torch.manual_seed(0)
    gan = dcgan.build(config, 3, "cpu")
    assert gan.speed == SpeedSettings("cpu", amp=True, channels_last=True, compile=False)
    weights = image_weights(gan.generator, gan.discriminator)
    assert len(weights) == 8  # 4 transposed convolutions, 4 convolutions
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    assert not weights[-4].is_contiguous()  # D's first conv (4, 3, 4, 4): the formats differ
    data, order = image_data(64, 3, 32), DataOrder(64, config.batch_size, 0)
    real = dcgan.real_batch(data, order, gan, config.hflip)
    assert real.is_contiguous(memory_format=torch.channels_last) and not real.is_contiguous()
    dtypes = record_output_dtypes((nn.Conv2d, nn.ConvTranspose2d), gan.generator, gan.discriminator)
    optimizers = dcgan.build_optimizers(gan, {"generator": ADAM, "discriminator": ADAM})
    before = parameters(gan.generator, gan.discriminator)
    loss_d, loss_g = dcgan.train_step(gan, optimizers, data, order, config)
    # G for the fake batch (4 layers), D on real and fake (2 x 4), D on the same fake batch for
    # G's step (4): G runs once per step, as in pytorch/examples (reuse_fake; issue 13).
    assert dtypes == [torch.bfloat16] * 16
    for value in (loss_d, loss_g):
        assert value.dtype == torch.float32 and math.isfinite(value.item())
    assert_all_changed_float32(before, gan.generator, gan.discriminator)
    images = dcgan.generate_images(gan, gan.noise(4))
    assert images.dtype == torch.float32 and torch.isfinite(images).all()


@pytest.mark.parametrize("architecture", ["conv", "mlp"])
def test_vae_cpu_speed_settings_bf16_channels_last_float32_losses(architecture):
    config = vae_config(architecture=architecture, cpu_speed_settings=True, amp=True)
    torch.manual_seed(0)
    model = vae.build(config, 3, "cpu")
    conv = architecture == "conv"
    assert model.speed == SpeedSettings("cpu", amp=True, channels_last=conv, compile=False)
    weights = image_weights(model.encoder, model.decoder)
    assert len(weights) == (4 if conv else 0)
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    assert all(not w.is_contiguous() for w in weights)  # C > 1, 4x4 kernels: the formats differ
    inputs: list[torch.Tensor] = []
    first = next(m for m in model.encoder.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    first.register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
    dtypes = record_output_dtypes(
        (nn.Conv2d, nn.ConvTranspose2d, nn.Linear), model.encoder, model.decoder
    )
    optimizers = vae.build_optimizers(model, {"model": ADAM}, config)
    before = parameters(model.encoder, model.decoder)
    images = image_data(64, 3, 28).train[: config.batch_size]
    loss = vae.train_step(model, optimizers, images, config, kl_weight=1.0)
    layers = 8 if conv else 4  # conv: 2 convolutions and 2 linears each way; mlp: 2 linears
    assert dtypes == [torch.bfloat16] * layers
    if conv:
        assert inputs[0].is_contiguous(memory_format=torch.channels_last)
        assert not inputs[0].is_contiguous()
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
    assert_all_changed_float32(before, model.encoder, model.decoder)
    recon, kl, output = vae.forward_losses(model, vae.model_input(images, config), config)
    assert {recon.dtype, kl.dtype, output.dtype} == {torch.float32}


def test_a_fresh_fake_batch_for_gs_step_is_a_second_generator_forward():
    """reuse_fake: false keeps the suite's step before issue 13 (G runs twice per step)."""
    config = gan_config(reuse_fake=False)
    gan = dcgan.build(config, 3, "cpu")
    calls = []
    gan.generator.register_forward_hook(lambda *_: calls.append("G"))
    optimizers = dcgan.build_optimizers(gan, {"generator": ADAM, "discriminator": ADAM})
    data, order = image_data(64, 3, 32), DataOrder(64, config.batch_size, 0)
    dcgan.train_step(gan, optimizers, data, order, config)
    assert calls == ["G", "G"]
    calls.clear()
    dcgan.train_step(gan, optimizers, data, order, replace(config, reuse_fake=True))
    assert calls == ["G"]


def test_compiled_transposed_convolutions_stay_contiguous():
    """pytorch/pytorch#171622: inductor's meta kernel predicts contiguous strides for a
    channels_last ConvTranspose2d backward on CUDA (the compiled DCGAN step failed its
    assert_size_stride on an H200, issue 13). With compile on, the module with transposed
    convolutions (DCGAN's generator, the VAE decoder) stays contiguous; the others keep
    channels_last. Without compile, everything is channels_last as before."""
    speed = SpeedSettings("cuda", amp=True, channels_last=True, compile=True)
    generator = dcgan.Generator(16, 8, 3, 32)
    discriminator = dcgan.Discriminator(8, 3, 32)
    assert speed.memory_format(generator) == torch.contiguous_format
    assert speed.memory_format(discriminator) == torch.channels_last
    eager = replace(speed, compile=False)
    assert eager.memory_format(generator) == torch.channels_last
    assert replace(speed, channels_last=False).memory_format(discriminator) == (
        torch.contiguous_format
    )
    model = vae.build(vae_config(cpu_speed_settings=True, compile=True), 3, "cpu")
    assert model.encoder.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    decoder_convs = [m for m in model.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert all(m.weight.is_contiguous() for m in decoder_convs)


# --- off (the CPU default): nothing changes ------------------------------------------------


def test_cpu_default_is_fp32_contiguous_and_eager():
    config = gan_config(compile=True)  # asked for, but the CPU gate keeps it off
    assert (config.amp, config.channels_last, config.cpu_speed_settings) == (True, True, False)
    gan = dcgan.build(config, 3, "cpu")
    assert gan.speed == SpeedSettings("cpu", amp=False, channels_last=False, compile=False)
    assert gan.generate is gan.generator and gan.discriminate is gan.discriminator
    weights = image_weights(gan.generator, gan.discriminator)
    assert all(w.is_contiguous() for w in weights)
    assert not weights[-4].is_contiguous(memory_format=torch.channels_last)
    data, order = image_data(64, 3, 32), DataOrder(64, config.batch_size, 0)
    real = dcgan.real_batch(data, order, gan, config.hflip)
    assert real.is_contiguous() and not real.is_contiguous(memory_format=torch.channels_last)
    dtypes = record_output_dtypes((nn.Conv2d, nn.ConvTranspose2d), gan.generator, gan.discriminator)
    optimizers = dcgan.build_optimizers(gan, {"generator": ADAM, "discriminator": ADAM})
    losses = dcgan.train_step(gan, optimizers, data, order, config)
    assert dtypes == [torch.float32] * 16  # one G forward per step (reuse_fake)
    assert {loss.dtype for loss in losses} == {torch.float32}

    config = vae_config(amp=True, compile=True)
    model = vae.build(config, 3, "cpu")
    assert model.speed == SpeedSettings("cpu", amp=False, channels_last=False, compile=False)
    assert model.encode is model.encoder and model.decode is model.decoder
    weights = image_weights(model.encoder, model.decoder)
    assert all(w.is_contiguous() for w in weights)
    assert not any(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    inputs: list[torch.Tensor] = []
    model.encoder.body[0].register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
    dtypes = record_output_dtypes((nn.Conv2d, nn.ConvTranspose2d), model.encoder, model.decoder)
    optimizers = vae.build_optimizers(model, {"model": ADAM}, config)
    images = image_data(64, 3, 28).train[: config.batch_size]
    vae.train_step(model, optimizers, images, config, kl_weight=1.0)
    assert dtypes == [torch.float32] * 4
    assert inputs[0].is_contiguous()
    assert not inputs[0].is_contiguous(memory_format=torch.channels_last)


# --- through the CLI ---------------------------------------------------------------------------


def smoke_result(tmp_path, experiment: str, arm: str, *settings: str) -> dict:
    overrides = [item for setting in settings for item in ("--set", setting)]
    code = main(
        [
            "run", experiment,
            "--budget", "smoke",
            "--workers", "1",
            "--arms", arm,
            "--results", str(tmp_path),
            "--no-report",
            "--set", "task.cpu_speed_settings=true",
            *overrides,
        ]
    )  # fmt: skip
    assert code == 0
    [path] = tmp_path.rglob("result.json")
    result = json.loads(path.read_text())
    assert result["status"] == "done", result["error"]
    assert result["metrics"] and all(math.isfinite(v) for v in result["metrics"].values())
    return result


@needs_shared
def test_dcgan_smoke_run_with_cpu_speed_settings(tmp_path, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "suite-cache"  # shared with test_dcgan
    result = smoke_result(
        tmp_path,
        "dcgan-cifar10-adam0-rmsprop-vs-sgd",
        "adam0_rmsprop",
        f"task.data.cache_dir={cache}",
    )
    assert set(result["metrics"]) >= {"eval/is_classifier", "eval/fid_classifier"}
    assert result["details"]["speed_settings"] == {
        "device_type": "cpu",
        "amp": True,
        "channels_last": True,
        "compile": False,
    }


@needs_shared
def test_vae_smoke_run_with_cpu_speed_settings(tmp_path):
    result = smoke_result(
        tmp_path,
        "vae-adabelief-vs-adam",
        "adam",
        "task.amp=true",  # the VAE's amp is off by default
        f"task.data.cache_dir={tmp_path / 'cache'}",
    )
    assert set(result["metrics"]) >= {"test/recon_nats", "test/kl_nats", "test/neg_elbo_nats"}
    assert result["details"]["speed_settings"] == {
        "device_type": "cpu",
        "amp": True,
        "channels_last": True,
        "compile": False,
    }


# --- torch.compile on the CPU (inductor, gcc): ~40 s (DCGAN) and 20-30 s (VAE) of compiling ---


@pytest.mark.slow
def test_dcgan_compiled_steps_match_eager_ones():
    data = image_data(64, 3, 32)
    states, losses = [], []
    for compile in (False, True):
        config = gan_config(cpu_speed_settings=True, amp=False, compile=compile)
        torch.manual_seed(0)
        gan = dcgan.build(config, 3, "cpu")
        assert (gan.generate is not gan.generator) == compile
        optimizers = dcgan.build_optimizers(gan, {"generator": SGD, "discriminator": SGD})
        order = DataOrder(len(data.train), config.batch_size, 0)
        steps = [dcgan.train_step(gan, optimizers, data, order, config) for _ in range(2)]
        losses.append(torch.tensor([[loss_d.item(), loss_g.item()] for loss_d, loss_g in steps]))
        states.append({**gan.generator.state_dict(), **gan.discriminator.state_dict()})
    eager, compiled = states
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-5)
    assert compiled.keys() == eager.keys()
    for name in eager:  # parameters and batch-norm statistics
        torch.testing.assert_close(compiled[name], eager[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_vae_compiled_steps_match_eager_ones():
    images = image_data(64, 3, 28).train
    states, losses = [], []
    for compile in (False, True):
        config = vae_config(cpu_speed_settings=True, amp=False, compile=compile)
        torch.manual_seed(0)
        model = vae.build(config, 3, "cpu")
        assert (model.encode is not model.encoder) == compile
        optimizers = vae.build_optimizers(model, {"model": SGD}, config)
        batches = images[: 2 * config.batch_size].split(config.batch_size)
        steps = [vae.train_step(model, optimizers, x, config, kl_weight=1.0) for x in batches]
        losses.append(torch.stack(steps))
        states.append({**model.encoder.state_dict(), **model.decoder.state_dict()})
    eager, compiled = states
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-5)
    for name in eager:
        torch.testing.assert_close(compiled[name], eager[name], rtol=1e-4, atol=1e-5, msg=name)
