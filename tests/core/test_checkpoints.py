"""Checkpoints: nltool's own format, the authors' released .th layout, and clear failures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import random_state_dict

from nltool.errors import CheckpointError
from nltool.models import build_model, load_checkpoint, save_checkpoint
from nltool.models.authors import from_authors_state_dict

ARCHS = ["linknet", "nl3-linknet", "nl4-linknet", "nl34-linknet", "dlinknet"]


def _forward(model: torch.nn.Module, seed: int = 0) -> torch.Tensor:
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return model.eval()(x)


def test_nltool_checkpoint_round_trip_keeps_weights_and_metadata(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("nl4-linknet", pairwise="dot_product")
    path = save_checkpoint(tmp_path / "run" / "best.pt", model, training_config={"lr": 3e-4, "crop": 256},
                           epoch=7, best_metric=0.61, metric_name="val_iou")
    loaded = load_checkpoint(path)
    assert loaded.source_format == "nltool"
    meta = loaded.metadata
    assert (meta.config.arch, meta.config.pairwise) == ("nl4-linknet", "dot_product")
    assert meta.config.normalization == model.config.normalization
    assert (meta.epoch, meta.best_metric, meta.metric_name) == (7, 0.61, "val_iou")
    assert meta.training_config == {"lr": 3e-4, "crop": 256}
    assert meta.nltool_version
    assert torch.equal(_forward(loaded.model), _forward(model))
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"], "no temporary files left behind"


def test_checkpoint_is_plain_data_loadable_with_weights_only(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", build_model("linknet"))
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "nltool.checkpoint" and raw["metadata"]["arch"] == "linknet"
    assert raw["metadata"]["normalization"] == {"mean": [0.5, 0.5, 0.5], "std": [0.3125, 0.3125, 0.3125]}


@pytest.mark.parametrize("arch", ARCHS)
def test_authors_th_loads_and_matches_nltool_format(arch: str, authors_keys, tmp_path: Path) -> None:
    shapes = authors_keys[arch]
    state = random_state_dict(shapes, seed=ARCHS.index(arch))
    th = tmp_path / f"{arch}.th"
    torch.save(state, th)  # as the authors saved it: a raw DataParallel state dict

    loaded = load_checkpoint(th, arch=arch)
    assert loaded.source_format == "authors"
    # Every authors' tensor landed, unchanged, in the nltool module it maps to.
    ours = loaded.model.state_dict()
    renamed = from_authors_state_dict(state, has_dilated_center=arch == "dlinknet")
    assert len(renamed) == len(shapes) == len(ours)
    for key, value in renamed.items():
        assert torch.equal(ours[key], value), key

    # The same weights in nltool's own format give the same outputs.
    own = load_checkpoint(save_checkpoint(tmp_path / f"{arch}.pt", loaded.model))
    assert own.source_format == "nltool"
    out = _forward(loaded.model)
    assert torch.isfinite(out).all()
    assert torch.equal(_forward(own.model), out)


def test_authors_pairwise_class_extras_are_ignored(authors_keys, tmp_path: Path) -> None:
    """The authors' NL_LinkNet_Gaussian also saves unused seb_conv* and dblock weights."""
    shapes = {k: v for k, v in authors_keys["nl34-linknet"].items() if ".theta." not in k and ".phi." not in k}
    shapes.update({"module.seb_conv2.weight": [64, 128, 3, 3], "module.seb_conv2.bias": [64]})
    shapes.update({k: v for k, v in authors_keys["dlinknet"].items() if ".dblock." in k})
    torch.save(random_state_dict(shapes), tmp_path / "gauss.th")
    loaded = load_checkpoint(tmp_path / "gauss.th", arch="nl34-linknet", pairwise="gaussian")
    assert loaded.model.encoder.nonlocal4.theta is None


def test_raw_state_dict_without_arch_asks_for_it_and_guesses(authors_keys, tmp_path: Path) -> None:
    torch.save(random_state_dict(authors_keys["nl34-linknet"]), tmp_path / "x.th")
    with pytest.raises(CheckpointError, match="arch must be given.*--arch nl34-linknet"):
        load_checkpoint(tmp_path / "x.th")


def test_wrong_arch_names_the_unexpected_keys(authors_keys, tmp_path: Path) -> None:
    torch.save(random_state_dict(authors_keys["nl34-linknet"]), tmp_path / "x.th")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "x.th", arch="linknet")
    message = str(info.value)
    assert "does not fit arch 'linknet'" in message and "nothing was loaded" in message
    assert "unexpected keys (26)" in message and "encoder.nonlocal3.g.0.weight" in message
    assert "--arch nl34-linknet" in message


def test_missing_key_and_shape_mismatch_are_named(authors_keys, tmp_path: Path) -> None:
    state = random_state_dict(authors_keys["linknet"])
    del state["module.finalconv3.bias"]
    state["module.decoder1.conv1.weight"] = torch.zeros(8, 64, 1, 1)
    torch.save(state, tmp_path / "x.th")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "x.th", arch="linknet")
    message = str(info.value)
    assert "missing keys (1): decoder.head.conv3.bias" in message
    assert "decoder.block1.conv1.weight: file (8, 64, 1, 1) vs model (16, 64, 1, 1)" in message


def test_truncated_file_is_a_readable_error(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", build_model("linknet"))
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pt: the file is truncated, corrupt or not a PyTorch file"):
        load_checkpoint(cut)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint\n", b"\x80\x02junk"])
def test_empty_or_junk_files_are_readable_errors(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)


def test_pickled_module_is_refused_not_executed(tmp_path: Path) -> None:
    torch.save(build_model("linknet"), tmp_path / "full.pt")
    with pytest.raises(CheckpointError, match="holds Python objects.*weights_only=True"):
        load_checkpoint(tmp_path / "full.pt")


def test_nltool_checkpoint_with_conflicting_arch_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", build_model("nl3-linknet"))
    with pytest.raises(CheckpointError, match="holds a 'nl3-linknet' model but arch 'dlinknet'"):
        load_checkpoint(path, arch="dlinknet")
    assert load_checkpoint(path, arch="nl3-linknet").metadata.config.arch == "nl3-linknet"


def test_plain_model_state_dict_loads_given_arch(tmp_path: Path) -> None:
    model = build_model("dlinknet")
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    loaded = load_checkpoint(tmp_path / "sd.pt", arch="dlinknet")
    assert loaded.source_format == "state_dict"
    assert torch.equal(_forward(loaded.model), _forward(model))


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint(tmp_path / "last.pt", build_model("linknet"))
    before = path.read_bytes()

    def explode(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*disk full"):
        save_checkpoint(path, build_model("nl3-linknet"))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_newer_format_version_asks_for_an_upgrade(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", build_model("linknet"))
    raw = torch.load(path, weights_only=True)
    raw["format_version"] = 99
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="format version 99.*Upgrade nltool"):
        load_checkpoint(path)
