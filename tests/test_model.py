"""DBNet parts: encoder contract and weight loading, decoders, head, assembled model."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from ocrtune.errors import InputError, OcrtuneError
from ocrtune.model.dbnet import IMAGENET_MEAN, DBNet, build_dbnet
from ocrtune.model.decoder import FPNDecoder, UNetDecoder
from ocrtune.model.encoder import build_encoder
from ocrtune.presets.schema import DecoderConfig, EncoderConfig, ModelsConfig

TRAIN_KEYS = {"prob_logits", "thresh", "binary_logits"}


def models_cfg(encoder: str = "resnet18", **decoder: object) -> ModelsConfig:
    return ModelsConfig(encoder=EncoderConfig(model_name=encoder), decoder=DecoderConfig(**decoder))


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv3_small_100"])
def test_dbnet_train_and_eval_outputs(name: str) -> None:
    torch.manual_seed(0)
    model = build_dbnet(models_cfg(name))
    x = torch.randn(2, 3, 128, 160)
    model.train()
    out = model(x)
    assert set(out) == TRAIN_KEYS
    for v in out.values():
        assert v.shape == (2, 1, 128, 160) and v.dtype == torch.float32
    assert 0 <= out["thresh"].min() and out["thresh"].max() <= 1
    assert out["binary_logits"].abs().max() <= model.head.k
    out["binary_logits"].mean().backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)

    model.eval()
    with torch.no_grad():
        ev = model(x)
    assert set(ev) == {"prob"}
    assert ev["prob"].shape == (2, 1, 128, 160)
    assert 0 <= ev["prob"].min() and ev["prob"].max() <= 1
    with torch.no_grad():
        forced = model(x, all_maps=True)
    assert set(forced) == TRAIN_KEYS
    torch.testing.assert_close(torch.sigmoid(forced["prob_logits"]), ev["prob"])


def test_binary_map_is_k_times_difference() -> None:
    model = build_dbnet(models_cfg()).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), all_maps=True)
    expected = model.head.k * (torch.sigmoid(out["prob_logits"]) - out["thresh"])
    torch.testing.assert_close(out["binary_logits"], expected)


def test_output_at_input_resolution_when_finest_stage_is_coarse() -> None:
    cfg = ModelsConfig(encoder=EncoderConfig(model_name="resnet18", out_indices=[2, 3, 4]))
    model = build_dbnet(cfg).eval()
    assert model.encoder.strides == [8, 16, 32]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 128))["prob"].shape == (1, 1, 96, 128)


def test_asf_and_unet_decoders() -> None:
    x = torch.randn(1, 3, 128, 128)
    plain = build_dbnet(models_cfg())
    asf = build_dbnet(models_cfg(asf=True))
    unet = build_dbnet(models_cfg(name="unet"))
    assert isinstance(asf.decoder, FPNDecoder) and asf.decoder.asf is not None
    assert plain.decoder.asf is None
    assert isinstance(unet.decoder, UNetDecoder)
    n_plain = sum(p.numel() for p in plain.parameters())
    assert sum(p.numel() for p in asf.parameters()) > n_plain
    for model in (asf, unet):
        assert model.decoder.out_channels == 64 * 4
        out = model.train()(x)
        assert {k: tuple(v.shape) for k, v in out.items()} == {k: (1, 1, 128, 128) for k in TRAIN_KEYS}
        out["prob_logits"].mean().backward()
        assert all(p.grad is not None for p in model.decoder.parameters())


def test_asf_with_unet_is_rejected() -> None:
    with pytest.raises(InputError) as err:  # before any encoder work: the encoder name is bad too
        build_dbnet(models_cfg("no_such_net", name="unet", asf=True))
    assert err.value.problems[0].key == "models.decoder.asf"


def test_decoder_channels_follow_config() -> None:
    model = build_dbnet(models_cfg(inner_channels=32, out_channels=8))
    assert model.decoder.out_channels == 32
    assert model.head.prob[0].in_channels == 32
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64))["prob"].shape == (1, 1, 64, 64)


# --------------------------------------------------------------------------- encoder contract


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_encoder_matches_feature_info(name: str) -> None:
    enc = build_encoder(EncoderConfig(model_name=name, out_indices=[1, 2, 3, 4]))
    ref = timm.create_model(name, features_only=True, out_indices=(1, 2, 3, 4))
    assert enc.channels == ref.feature_info.channels()
    assert enc.strides == [4, 8, 16, 32]
    feats = enc(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == enc.channels
    assert [64 // f.shape[-1] for f in feats] == enc.strides


def test_efficientnet_b4_contract() -> None:
    enc = build_encoder(EncoderConfig(model_name="efficientnet_b4", out_indices=[1, 2, 3, 4]))
    assert enc.channels == [32, 56, 160, 448]
    assert enc.strides == [4, 8, 16, 32]


def test_unknown_model_name_suggests() -> None:
    with pytest.raises(InputError) as err:
        build_encoder(EncoderConfig(model_name="resnett18"))
    prob = err.value.problems[0]
    assert prob.key == "models.encoder.model_name"
    assert "resnet18" in prob.message and "did you mean" in prob.message


def test_out_indices_out_of_range() -> None:
    with pytest.raises(InputError) as err:
        build_encoder(EncoderConfig(model_name="resnet18", out_indices=[1, 2, 5]))
    prob = err.value.problems[0]
    assert prob.key == "models.encoder.out_indices"
    assert "5 feature stages" in prob.message and "[5]" in prob.message


# --------------------------------------------------------------------------- weights


def _saved(tmp_path: Path, name: str, sd: dict, file: str = "w.pth") -> Path:
    path = tmp_path / file
    torch.save(sd, path)
    return path


def _first_conv(enc) -> torch.Tensor:
    return next(iter(enc.model.state_dict().values()))


def test_pretrained_path_full_model_with_prefix(tmp_path: Path) -> None:
    torch.manual_seed(1)
    full = timm.create_model("resnet18", pretrained=False)
    sd = {f"model.{k}": v for k, v in full.state_dict().items()}  # fc.* and a wrapper prefix
    path = _saved(tmp_path, "resnet18", {"state_dict": sd})
    enc = build_encoder(EncoderConfig(model_name="resnet18", pretrained_path=str(path), out_indices=[1, 2, 3]))
    got = enc.model.state_dict()
    for k in ("conv1.weight", "layer3.1.bn2.running_var", "layer1.0.conv2.weight"):
        torch.testing.assert_close(got[k], full.state_dict()[k])


def test_pretrained_path_features_model_flattened_names(tmp_path: Path) -> None:
    torch.manual_seed(2)
    feats = timm.create_model("convnext_atto", features_only=True, out_indices=(0, 1, 2, 3))
    assert any("stem_0" in k for k in feats.state_dict())  # flattened names
    path = _saved(tmp_path, "convnext_atto", feats.state_dict())
    enc = build_encoder(
        EncoderConfig(model_name="convnext_atto", pretrained_path=str(path), out_indices=[0, 1, 2, 3])
    )
    for k, v in feats.state_dict().items():
        torch.testing.assert_close(enc.model.state_dict()[k], v)
    # and the full classification model's names (stem.0 ...) land on the same weights
    full = timm.create_model("convnext_atto", pretrained=False)
    path2 = _saved(tmp_path, "full", full.state_dict(), "full.pt")
    enc2 = build_encoder(
        EncoderConfig(model_name="convnext_atto", pretrained_path=str(path2), out_indices=[0, 1, 2, 3])
    )
    torch.testing.assert_close(enc2.model.state_dict()["stem_0.weight"], full.state_dict()["stem.0.weight"])


def test_pretrained_path_safetensors(tmp_path: Path) -> None:
    safetensors = pytest.importorskip("safetensors.torch")
    full = timm.create_model("mobilenetv3_small_100", pretrained=False)
    path = tmp_path / "w.safetensors"
    safetensors.save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(path))
    enc = build_encoder(EncoderConfig(model_name="mobilenetv3_small_100", pretrained_path=str(path)))
    torch.testing.assert_close(enc.model.state_dict()["conv_stem.weight"], full.state_dict()["conv_stem.weight"])


def test_pretrained_path_mismatch_fails_loudly(tmp_path: Path) -> None:
    other = timm.create_model("resnet34", pretrained=False)
    path = _saved(tmp_path, "resnet34", other.state_dict())
    with pytest.raises(InputError) as err:
        build_encoder(EncoderConfig(model_name="resnet18", pretrained_path=str(path)))
    prob = err.value.problems[0]
    assert prob.key == "models.encoder.pretrained_path" and prob.file == str(path)
    assert "unexpected keys" in prob.message and "layer1.2.conv1.weight" in prob.message


def test_pretrained_path_missing_keys_and_shapes(tmp_path: Path) -> None:
    sd = timm.create_model("resnet18", pretrained=False).state_dict()
    del sd["layer2.0.conv1.weight"]
    sd["conv1.weight"] = torch.zeros(32, 3, 7, 7)
    path = _saved(tmp_path, "resnet18", sd)
    with pytest.raises(InputError) as err:
        build_encoder(EncoderConfig(model_name="resnet18", pretrained_path=str(path)))
    msg = err.value.problems[0].message
    assert "1 missing keys: layer2.0.conv1.weight" in msg
    assert "shape mismatches: conv1.weight (32, 3, 7, 7) vs (64, 3, 7, 7)" in msg


def test_pretrained_path_missing_file_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        build_encoder(EncoderConfig(pretrained_path=str(tmp_path / "nope.pth")))
    assert err.value.problems[0].key == "models.encoder.pretrained_path"
    assert "not found" in str(err.value)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read weights"):
        build_encoder(EncoderConfig(pretrained_path=str(junk)))
    notsd = _saved(tmp_path, "x", {"epoch": 3}, "notsd.pth")
    with pytest.raises(InputError, match="not a state_dict"):
        build_encoder(EncoderConfig(pretrained_path=str(notsd)))


def test_pretrained_true_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from timm.models import _builder

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(_builder, "load_state_dict_from_hf", offline)
    monkeypatch.setattr(_builder, "load_state_dict_from_url", offline)
    monkeypatch.setattr(_builder, "download_cached_file", offline)
    with pytest.raises(OcrtuneError) as err:
        build_encoder(EncoderConfig(model_name="resnet18", pretrained=True))
    msg = str(err.value)
    assert not isinstance(err.value, InputError)
    assert "could not download pretrained weights for 'resnet18'" in msg
    assert "pretrained_path" in msg and "pretrained: false" in msg


def test_pretrained_and_path_together_is_rejected(tmp_path: Path) -> None:
    path = _saved(tmp_path, "r", timm.create_model("resnet18").state_dict())
    with pytest.raises(InputError) as err:
        build_encoder(EncoderConfig(pretrained=True, pretrained_path=str(path)))
    assert err.value.problems[0].key == "models.encoder.pretrained_path"


def test_imagenet_constants_exported() -> None:
    assert IMAGENET_MEAN.shape == (3,)
    assert isinstance(build_dbnet(ModelsConfig()), DBNet)


def test_a_few_steps_fit_one_batch() -> None:
    """Model and loss together learn: a few Adam steps on one batch cut the loss and find the text."""
    from ocrtune.model.loss import DBLoss

    torch.manual_seed(0)
    model = build_dbnet(models_cfg("mobilenetv3_small_100", inner_channels=32, out_channels=8)).train()
    x = torch.randn(2, 3, 64, 64)
    prob_map = torch.zeros(2, 64, 64)
    prob_map[:, 20:30, 8:56] = 1.0
    thresh_map = torch.full((2, 64, 64), 0.3)
    thresh_map[:, 16:34, 4:60] = 0.7
    batch = {
        "prob_map": prob_map,
        "prob_mask": torch.ones(2, 64, 64),
        "thresh_map": thresh_map,
        "thresh_mask": torch.ones(2, 64, 64),
    }
    loss_fn = DBLoss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        out = loss_fn(model(x), batch)
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.8 * losses[0]
    with torch.no_grad():
        prob = torch.sigmoid(model(x)["prob_logits"][:, 0])
    assert prob[:, 20:30, 8:56].mean() > 1.5 * prob[:, 40:, :].mean()  # text scores above paper


def test_bf16_autocast_forward_gives_fp32_training_maps() -> None:
    model = build_dbnet(models_cfg("mobilenetv3_small_100", inner_channels=32, out_channels=8)).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(1, 3, 64, 64))
    assert all(v.dtype == torch.float32 for v in out.values())
    expected = model.head.k * (torch.sigmoid(out["prob_logits"]) - out["thresh"])
    torch.testing.assert_close(out["binary_logits"], expected)
