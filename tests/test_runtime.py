"""The torch-free path (core.runtime on ONNX Runtime): graphs exported from the PyTorch models give the same
pixels (within one level of 8 bits, edges included), keep the torus identities, need no torch to run, and
one seed gives one texture on both paths (core.noise)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import noise, runtime, weights
from core.export_onnx import SHIPPED_GRAPHS, export
from helpers import REPO, STYLES, cli_env, make_models_folder, tiny_generator, tiny_upscaler

onnx = pytest.importorskip("onnx")
SHIPPED = REPO / "core" / "weights"
LEVEL = 1 / 255


# helpers

def session(model, kind: str, folder: Path):
    """Export `model` into `folder`/graphs and open it the way the runtime does → its session."""
    path = folder / f"{kind}.safetensors"  # only its folder matters to find_graph
    export(model, kind, model.cfg.to_dict(), folder / "graphs")
    tensors = {k: v.numpy() for k, v in model.state_dict().items()}
    meta = {"kind": kind, "config": model.cfg.to_dict()}
    return runtime.open_session(path, meta, tensors, ["CPUExecutionProvider"])[0]


def levels(a: np.ndarray, b: np.ndarray) -> int:
    """Largest difference in 8-bit levels between two float images in [0, 1]."""
    return int(np.abs(np.round(np.clip(a, 0, 1) * 255) - np.round(np.clip(b, 0, 1) * 255)).max())


def gan_inputs(model, cells: tuple[int, int], seed: int = 0, style: int = 1) -> tuple[np.ndarray, np.ndarray]:
    w = torch.zeros(1, model.cfg.styles)
    w[0, style] = 1.0
    s = model.embed(w)
    return model.make_noise(s, cells, [seed], model.layout_gate(w)).numpy(), s.numpy()


# noise and seeds

def test_a_seed_draws_the_same_numbers_everywhere():
    """The seed format: numpy's PCG64 in a fixed order. These values change only if every texture does."""
    cfg = tiny_generator().cfg
    d = noise.draw(cfg, (3, 5), 7)
    assert d.local.shape == (4, 3, 5) and d.detail.shape == (20, 3, 5) and d.fine_phase.shape == (2, 1, 1)
    assert all(a.dtype == np.float32 for a in (d.local, d.glob, d.phase, d.detail, d.fine_phase))
    np.testing.assert_allclose(d.local[0, 0, :3], [1.5219693, -1.1441058, 1.1501616], rtol=1e-6)
    np.testing.assert_allclose(d.glob[:2, 0, 0], [0.030065445, -0.17637537], rtol=1e-6)
    np.testing.assert_allclose(d.phase[:2, 0, 0], [4.348166, 5.5407858], rtol=1e-6)
    np.testing.assert_allclose(d.fine_phase[:, 0, 0], [1.5881922, 4.4404445], rtol=1e-6)
    assert d.layout.shape == (6, 6, 10) and d.layout.dtype == np.float32  # 2 lattices at fine level 1


def test_torch_and_numpy_noise_grids_agree():
    """TextureGenerator.make_noise given seeds == core.noise.grid from the same weights (the runtime's)."""
    model = tiny_generator()
    cells = (3, 5)
    z, s = gan_inputs(model, cells, seed=11)
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    freq = (s @ sd["wave.weight"].T + sd["wave.bias"]).reshape(-1, 2)
    fine = (s @ sd["fine_wave.weight"].T + sd["fine_wave.bias"]).reshape(-1, 2)
    grid = noise.grid(model.cfg, noise.draw(model.cfg, cells, 11), freq, fine)
    assert grid.shape == z.shape == (1, model.cfg.noise_dim, 3, 5)
    assert np.abs(grid - z).max() < 1e-5


def test_a_batch_of_seeds_is_each_seed_alone():
    model = tiny_generator()
    s = model.embed(torch.tensor([[0.0, 1.0]])).expand(3, -1)
    both = model.make_noise(s, (2, 3), [5, 9, 5])
    assert torch.equal(both[0], both[2]) and torch.equal(both[1], model.make_noise(s[:1], (2, 3), [9])[0])


# exported graphs

@pytest.mark.parametrize("cells", [(4, 4), (3, 5), (2, 3)])  # 2: the least wrap_upsample takes
def test_exported_generator_matches_pytorch(tmp_path, cells):
    model = tiny_generator()
    sess = session(model, "generator", tmp_path)
    z, s = gan_inputs(model, cells)
    (got,) = sess.run(None, {"noise": z, "style": s})
    want = model.synthesize(torch.from_numpy(z), torch.from_numpy(s)).numpy()
    assert got.shape == want.shape == (1, 3, cells[0] * 4, cells[1] * 4)
    assert np.abs(got - want).max() < 1e-4
    assert levels(got * 0.5 + 0.5, want * 0.5 + 0.5) <= 1
    for edge in (np.s_[..., 0, :], np.s_[..., -1, :], np.s_[..., :, 0], np.s_[..., :, -1]):  # the wrap-around
        assert np.abs(got[edge] - want[edge]).max() < 1e-4


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (2, 3, 5, 7)])
def test_exported_upscaler_matches_pytorch(tmp_path, scale, shape):
    model = tiny_upscaler(scale, seed=scale)
    sess = session(model, "upscaler", tmp_path)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    (got,) = sess.run(None, {"image": x})
    want = model(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape == (shape[0], 3, shape[2] * scale, shape[3] * scale)
    assert np.abs(got - want).max() < 1e-4 and levels(got, want) <= 1


def test_exported_graph_holds_structure_and_wraps_with_slices(tmp_path):
    """No weight data, no Pad (the wrap-around is slices and concatenations); every weight named as in the file."""
    model = tiny_upscaler(4)
    path = export(model, "upscaler", model.cfg.to_dict(), tmp_path)
    assert path.name == weights.graph_name("upscaler", model.cfg.to_dict()) + ".onnx"
    graph = onnx.load(str(path), load_external_data=False)
    ops = {n.op_type for n in graph.graph.node}
    assert "Pad" not in ops and {"Slice", "Concat", "Conv"} <= ops
    inits = {i.name: i for i in graph.graph.initializer}
    assert set(inits) == set(model.state_dict())
    assert all(i.data_location == onnx.TensorProto.EXTERNAL and not i.raw_data for i in inits.values())


def test_graph_name_ignores_the_number_of_styles_not_the_architecture():
    cfg = tiny_generator().cfg.to_dict()
    assert weights.graph_name("generator", cfg) == weights.graph_name("generator", {**cfg, "styles": 7})
    assert weights.graph_name("generator", cfg) != weights.graph_name("generator", {**cfg, "fine_periodic_dim": 3})
    with pytest.raises(ValueError, match="unknown model kind 'painter'"):
        weights.graph_name("painter", cfg)


# the torus identities on the exported path

def test_exported_generator_tiles_and_rolls(tmp_path):
    model = tiny_generator()
    sess = session(model, "generator", tmp_path)
    z, s = gan_inputs(model, (3, 4))
    run = lambda z: sess.run(None, {"noise": np.ascontiguousarray(z), "style": s})[0]  # noqa: E731
    one = run(z)
    assert np.abs(run(np.tile(z, (1, 1, 2, 2))) - np.tile(one, (1, 1, 2, 2))).max() < 1e-4
    rolled = run(np.roll(z, (1, 2), axis=(2, 3)))
    assert np.abs(rolled - np.roll(one, (4, 8), axis=(2, 3))).max() < 1e-4


@pytest.mark.parametrize("scale", [2, 4])
def test_exported_upscaler_tiles_and_rolls(tmp_path, scale):
    model = tiny_upscaler(scale)
    sess = session(model, "upscaler", tmp_path)
    x = np.random.default_rng(1).random((1, 3, 6, 5), dtype=np.float32)
    run = lambda x: sess.run(None, {"image": np.ascontiguousarray(x)})[0]  # noqa: E731
    one = run(x)
    assert np.abs(run(np.tile(x, (1, 1, 2, 2))) - np.tile(one, (1, 1, 2, 2))).max() < 1e-4
    assert np.abs(run(np.roll(x, (2, 3), axis=(2, 3))) - np.roll(one, (2 * scale, 3 * scale), axis=(2, 3))).max() < 1e-4


# the runtime on whole models folders

@pytest.fixture
def onnx_models(tmp_path) -> Path:
    """The tiny models folder of the other tests, with its graphs exported (torch is here, at test time)."""
    from core.export_onnx import export_folder

    folder = make_models_folder(tmp_path / "models")
    assert len(export_folder(folder)) == 3
    return folder


def test_runtime_generates_what_the_torch_path_generates(onnx_models):
    from core import api

    rt = runtime.load(models_dir=onnx_models)
    gen = api.load_generator(device="cpu", models_dir=onnx_models)
    assert rt.styles == gen.styles == STYLES and rt.errors == []
    for style, seed, size in (("grass", 3, 256), ("brick:0.3+grass:0.7", 0, 320)):
        a, b = rt.generate(style, seed=seed, size=size), gen.generate(style, seed=seed, size=size)
        assert a.shape == (size, size, 3) and a.dtype == np.uint8
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert not np.array_equal(rt.generate("grass", seed=4, size=256), rt.generate("grass", seed=3, size=256))
    x = np.random.default_rng(2).random((1, 3, 300, 20), dtype=np.float32)  # several tiles, mirrored context
    for tileable in (True, False):
        want = gen._upscale(torch.from_numpy(x), 2, tileable=tileable).numpy()
        assert levels(rt.upscale_unit(x, 2, tileable=tileable), want) <= 1


def test_a_file_with_layout_styles_gates_the_layouts_alike_on_both_paths(tmp_path):
    """A generator whose layouts only brick sees: the runtime and the torch path draw the same pixels for
    brick, grass and a mix of them, and grass differs from what the same tensors draw without the gate."""
    from core import api
    from core.config import GeneratorConfig
    from core.export_onnx import export_folder
    from core.generator import TextureGenerator
    from helpers import save_generator

    plain = tiny_generator()
    gated = TextureGenerator(GeneratorConfig(**{**plain.cfg.to_dict(), "layout_styles": [0]})).eval()
    gated.load_state_dict(plain.state_dict())
    folders = {}
    for name, model in (("plain", plain), ("gated", gated)):
        folders[name] = tmp_path / name
        save_generator(folders[name] / "gan-tiny.safetensors", model)
        export_folder(folders[name])
    assert [p.name for p in (folders["gated"] / "graphs").glob("*.onnx")] == \
        [p.name for p in (folders["plain"] / "graphs").glob("*.onnx")]  # the gate costs no new graph
    rt, gen = runtime.load(models_dir=folders["gated"]), api.load_generator(device="cpu", models_dir=folders["gated"])
    for style in ("brick", "grass", "brick:0.3+grass:0.7"):
        want = gen.generate_gan(style, seed=3, size=32).numpy()
        assert levels(rt.generate_gan(style, seed=3, size=32), want) <= 1
    ungated = runtime.load(models_dir=folders["plain"])
    assert levels(rt.generate_gan("grass", seed=3, size=32), ungated.generate_gan("grass", seed=3, size=32)) > 1
    assert np.array_equal(rt.generate_gan("brick", seed=3, size=32), ungated.generate_gan("brick", seed=3, size=32))


def test_runtime_upscaling_tells_each_tile_and_stops_when_told(onnx_models):
    """As core.upscaler.upscale_tiled: progress after every tile, and a progress that raises stops the
    upscaling there (the worker's Cancel on the bundled runtime)."""
    rt = runtime.load(models_dir=onnx_models)
    x = np.random.default_rng(0).random((1, 3, 300, 520), dtype=np.float32)  # 2 × 3 tiles of 256
    told: list[tuple[int, int]] = []
    rt.upscale_unit(x, 2, progress=lambda done, total: told.append((done, total)))
    assert told == [(i, 6) for i in range(1, 7)]

    class Stop(Exception):
        pass

    def stop_after_two(done: int, total: int) -> None:
        told.append((done, total))
        if done == 2:
            raise Stop

    told.clear()
    with pytest.raises(Stop):
        rt.upscale_unit(x, 2, progress=stop_after_two)
    assert told == [(1, 6), (2, 6)]
    told.clear()
    rt.upscale_unit(x[:, :, :64, :64], 2, progress=lambda done, total: told.append((done, total)))
    assert told == [(1, 1)]  # one pass on the torus


@pytest.mark.parametrize("call, match", [
    (lambda rt: rt.generate("lava", seed=0, size=256), "unknown style 'lava'"),
    (lambda rt: rt.generate("grass", seed=-1, size=256), "seed -1"),
    (lambda rt: rt.generate("grass", seed=0, size=100), "size 100 is not supported"),
    (lambda rt: rt.generate_gan("grass", seed=0, size=6), "size 6 does not fit"),
    (lambda rt: rt.upscale_unit(np.zeros((3, 8, 8), np.float32), 2), r"shape \(3, 8, 8\)"),
])
def test_runtime_refuses_bad_requests_in_one_line(onnx_models, call, match):
    with pytest.raises(ValueError, match=match):
        call(runtime.load(models_dir=onnx_models))


def test_a_file_without_its_graph_is_reported_and_the_others_load(onnx_models):
    for graph in (onnx_models / "graphs").glob("upscaler-*"):
        graph.unlink()
    (onnx_models / "sr-x2-tiny.safetensors").unlink()
    with pytest.warns(UserWarning, match="no ONNX graph upscaler-.* python -m core.export_onnx"):
        rt = runtime.load(models_dir=onnx_models)
    assert rt.styles == STYLES and len(rt.errors) == 1 and "sr-x4-tiny" in rt.errors[0]
    assert {s: up.path.parent for s, up in rt.upscalers.items()} == {2: SHIPPED, 4: SHIPPED}  # the shipped ones
    with pytest.raises(ValueError, match="execution provider 'NoSuchExecutionProvider'"):
        runtime.load(models_dir=onnx_models, providers=["NoSuchExecutionProvider"])


# the shipped weights and graphs

def test_shipped_graphs_are_there_and_match_pytorch():
    """Every shipped weights file has its graph committed, and the graph gives PyTorch's pixels."""
    for path in sorted(SHIPPED.glob("*.safetensors")):
        model, meta = weights.build(path)
        assert (SHIPPED_GRAPHS / f"{weights.graph_name(meta['kind'], meta['config'])}.onnx").is_file(), path.name
        tensors = {k: v.numpy() for k, v in model.state_dict().items()}
        sess = runtime.open_session(path, meta, tensors, ["CPUExecutionProvider"])[0]
        if meta["kind"] == "generator":
            z, s = gan_inputs(model, (3, 4), seed=1)
            (got,) = sess.run(None, {"noise": z, "style": s})
            want = model.synthesize(torch.from_numpy(z), torch.from_numpy(s)).numpy()
            assert levels(got * 0.5 + 0.5, want * 0.5 + 0.5) <= 1, path.name
        else:
            x = np.random.default_rng(0).random((1, 3, 12, 20), dtype=np.float32)
            grain = noise.upscaler_inputs(model.cfg, x.shape, [5])  # the detail upscaler takes noise
            feed = {"image": x} if grain is None else {"image": x, "noise": grain}
            (got,) = sess.run(None, feed)
            want = model(torch.from_numpy(x), None if grain is None else torch.from_numpy(grain)).numpy()
            assert levels(got, want) <= 1, path.name


NO_TORCH = """
import sys
sys.modules["torch"] = None  # `import torch` now raises ImportError, here and in everything imported below
import numpy as np
from core import runtime
rt = runtime.load()
np.save(sys.argv[1], rt.generate("grass", seed=3, size=256))
assert not any(name == "torch" or name.startswith("torch.") for name, m in sys.modules.items() if m is not None)
"""


def test_runtime_needs_no_torch_and_gives_the_torch_paths_texture(tmp_path):
    """With torch unimportable, the shipped weights make the texture the PyTorch path makes for the seed."""
    from core import api

    out = tmp_path / "grass3.npy"
    env = cli_env({"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")})  # no user models
    res = subprocess.run([sys.executable, "-c", NO_TORCH, str(out)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    want = api.load_generator(device="cpu", models_dir=SHIPPED).generate("grass", seed=3, size=256)
    assert np.abs(np.load(out).astype(int) - want.astype(int)).max() <= 1


def test_runtime_load_names_a_models_folder_that_is_not_there(tmp_path, monkeypatch):
    """A mistyped --models or $TESSERA_MODELS is named, as core.api.load_generator names it (was: 'no usable
    generator weights among 0 file(s)')."""
    with pytest.raises(FileNotFoundError, match=f"models folder {tmp_path / 'nope'} does not exist"):
        runtime.load(models_dir=tmp_path / "nope")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("TESSERA_MODELS", str(tmp_path / "file"))
    with pytest.raises(FileNotFoundError, match=r"\$TESSERA_MODELS=.*file is a file, expected a folder"):
        runtime.load()


def test_runtime_load_takes_one_provider_name_alone(onnx_models):
    """providers="CPUExecutionProvider" is a list of one, not of its letters (was: "provider 'C' is not …")."""
    rt = runtime.load(models_dir=onnx_models, providers="CPUExecutionProvider")
    assert rt.providers == ["CPUExecutionProvider"] and rt.styles == STYLES


def test_runtime_without_onnxruntime_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    with pytest.raises(ImportError, match=r"pip install onnxruntime==1\.23\.2"):
        runtime.load()


# per-image generators: a seed picks one member of each style

MEMBER_STYLE = np.array([0, 0, 0, 1, 1, 1])  # three members (training images) per style


def per_image_models(folder: Path) -> tuple[Path, torch.nn.Module, np.ndarray]:
    """The tiny models folder plus a per-image generator file `members.safetensors` (the tiny generator with a
    random image_code, members from random descriptors), graphs exported → (folder, its model, its table)."""
    from core.export_onnx import export_folder
    from core.generator import GeneratorConfig, TextureGenerator
    from helpers import save_generator

    make_models_folder(folder)
    (folder / "gan-tiny.safetensors").unlink()
    base = tiny_generator()
    model = TextureGenerator(GeneratorConfig(**{**base.cfg.to_dict(), "descriptor_dim": 13})).eval()
    model.load_state_dict(base.state_dict(), strict=False)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.image_code.weight.copy_(torch.randn(model.cfg.style_dim, 13, generator=g) * 0.5)
        phi = torch.randn(len(MEMBER_STYLE), 13, generator=g)
        table = model.style.weight[torch.from_numpy(MEMBER_STYLE)] + model.image_code(phi)
    members = {"members.embedding": table, "members.style": torch.from_numpy(MEMBER_STYLE),
               "descriptors.mean": torch.zeros(13), "descriptors.std": torch.ones(13)}
    path = weights.save(folder / "members.safetensors", "generator", model.cfg.to_dict(),
                        model.state_dict() | members, styles=STYLES, data={}, training={}, metrics={})
    assert weights.graph_name("generator", model.cfg.to_dict()) == weights.graph_name("generator", base.cfg.to_dict())
    assert len(export_folder(folder)) == 3  # the embedding is a graph input: one graph runs both kinds
    assert path.is_file()
    return folder, model.requires_grad_(False), table.numpy()


def test_a_seed_picks_one_member_per_style_from_its_own_stream():
    """The member stream is the seed's first spawned child, so `draw` (the noise) is untouched; these picks
    change only if every per-image texture does. A style picks the same member alone or in a mix."""
    picks = [noise.pick_members(MEMBER_STYLE, 2, seed).tolist() for seed in range(6)]
    assert picks == [[2, 3], [2, 3], [2, 3], [1, 4], [2, 3], [1, 5]]
    assert noise.pick_members(np.array([0, 1, 1, 0, 1]), 2, 2**64 - 1).tolist() == [0, 2]
    table = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    w = np.array([[0.25, 0.75]], np.float32)
    s = noise.member_embedding(w, table, MEMBER_STYLE, 5)
    assert s.shape == (1, 4) and s.dtype == np.float32
    np.testing.assert_allclose(s[0], 0.25 * table[1] + 0.75 * table[5], rtol=1e-6)
    assert np.array_equal(noise.member_embedding(np.array([[0.0, 1.0]], np.float32), table, MEMBER_STYLE, 5)[0],
                          table[5])
    a, b = noise.draw(tiny_generator().cfg, (2, 3), 5), noise.draw(tiny_generator().cfg, (2, 3), 5)
    assert np.array_equal(a.local, b.local)


def test_a_per_image_file_gives_each_seed_one_member_alike_on_both_paths(tmp_path):
    from core import api

    folder, model, table = per_image_models(tmp_path / "models")
    rt = runtime.load(models_dir=folder)
    gen = api.load_generator(device="cpu", models_dir=folder)
    assert rt.errors == gen.errors == [] and rt.styles == gen.styles == STYLES
    assert np.array_equal(rt.generators["grass"].members.embedding, table)
    assert np.array_equal(gen.generators["grass"].members.style, MEMBER_STYLE)
    for style, seed in (("grass", 3), ("grass", 5), ("brick:0.3+grass:0.7", 0)):
        a = rt.generate_gan(style, seed=seed, size=32)
        b = gen.generate_gan(style, seed=seed, size=32).numpy()
        assert levels(a, b) <= 1, (style, seed)
    # seeds 3 and 5 pick members 4 and 5 of grass: the texture of seed 3 is member 4's, not member 5's
    cells = (8, 8)

    def drawn(member: int, seed: int) -> torch.Tensor:
        s = torch.from_numpy(table[member:member + 1])
        return (model.synthesize(model.make_noise(s, cells, [seed]), s) * 0.5 + 0.5).clamp(0, 1)

    got = gen.generate_gan("grass", seed=3, size=32)
    assert torch.allclose(got, drawn(4, 3), atol=1e-6)
    assert (got - drawn(5, 3)).abs().max() > 1e-2  # the same noise with another member is another texture
    style_row = torch.from_numpy(model.style.weight[1:2].numpy())
    centre = (model.synthesize(model.make_noise(style_row, cells, [3]), style_row) * 0.5 + 0.5).clamp(0, 1)
    assert (got - centre).abs().max() > 1e-2  # not the style's own row: the member's
    # a file whose members leave a style without one is refused by name, on both paths
    meta, tensors = weights.read(folder / "members.safetensors")
    tensors["members.style"] = torch.zeros(6, dtype=torch.int64)
    weights.save(folder / "members.safetensors", "generator", meta["config"], tensors, styles=STYLES)
    for load in (lambda: runtime.load(models_dir=folder), lambda: api.load_generator("cpu", models_dir=folder)):
        with pytest.raises(FileNotFoundError, match="members.safetensors: style 1 has no member"):
            load()  # the only generator


def test_a_file_without_members_draws_what_it_drew(onnx_models, tmp_path):
    """The tiny generator's file (no members) gives exactly the texture of its style row and a seed's noise on
    both paths, as before per-image conditioning; the per-image file of the same weights draws the same noise."""
    from core import api

    folder, _, table = per_image_models(tmp_path / "per_image")  # onnx_models is tmp_path / "models"
    model = tiny_generator()
    gen, rt = api.load_generator(device="cpu", models_dir=onnx_models), runtime.load(models_dir=onnx_models)
    assert gen.generators["grass"].members is None and rt.generators["grass"].members is None
    t = rt.generators["grass"].table
    loaded = gen.generators["grass"].model
    for style, w in (("grass", [[0.0, 1.0]]), ("brick:0.3+grass:0.7", [[0.3, 0.7]])):
        with torch.inference_mode():  # what core.api did before members, step by step
            s = loaded.embed(torch.tensor(w))
            want = (loaded.synthesize(loaded.make_noise(s, (8, 8), [3]), s).float() * 0.5 + 0.5).clamp(0, 1)
        assert torch.equal(gen.generate_gan(style, seed=3, size=32), want)
        s_np = (np.array(w, np.float32) @ t["style.weight"]).astype(np.float32)  # the runtime's embedding as before
        freq = (s_np @ t["wave.weight"].T + t["wave.bias"]).reshape(-1, 2)
        fine = (s_np @ t["fine_wave.weight"].T + t["fine_wave.bias"]).reshape(-1, 2)
        z = noise.grid(model.cfg, noise.draw(model.cfg, (8, 8), 3), freq, fine)
        (x,) = rt.generators["grass"].session.run(None, {"noise": z, "style": s_np})
        assert np.array_equal(rt.generate_gan(style, seed=3, size=32), np.clip(x * np.float32(0.5) + 0.5, 0, 1))
    members = api.load_generator(device="cpu", models_dir=folder).generators["grass"]
    s = torch.from_numpy(table[4:5])
    z_member = members.model.make_noise(s, (8, 8), [3])
    z_plain = model.make_noise(s, (8, 8), [3])
    assert torch.equal(z_member, z_plain)


# the detail upscaler: generate's ×4 when loaded, on both paths; upscale keeps the faithful one

def test_generate_uses_the_detail_upscaler_and_upscale_the_faithful_one(tmp_path):
    from core import api
    from core.export_onnx import export_folder
    from core.imageio import to_uint8
    from helpers import save_upscaler

    folder = make_models_folder(tmp_path / "models")
    save_upscaler(folder / "sr-x4-detail.safetensors", tiny_upscaler(4, seed=7), role="detail")
    save_upscaler(folder / "sr-x2-detail.safetensors", tiny_upscaler(2, seed=8), role="detail")  # must be ×4
    export_folder(folder)
    with pytest.warns(UserWarning, match="must be ×4"):
        gen = api.load_generator(device="cpu", models_dir=folder)
    with pytest.warns(UserWarning, match="must be ×4"):
        rt = runtime.load(models_dir=folder)
    for loaded in (gen, rt):
        assert len(loaded.errors) == 1 and "sr-x2-detail.safetensors: a detail upscaler must be ×4" in loaded.errors[0]
    assert gen.detail[2].name == rt.detail.path.name == "sr-x4-detail.safetensors"
    assert gen.upscalers[4][2].name == rt.upscalers[4].path.name == "sr-x4-tiny.safetensors"

    x = gen.generate_gan("grass", seed=1, size=64)
    with torch.inference_mode():
        detail, faithful = to_uint8(gen.detail[0](x).clamp(0, 1)), to_uint8(gen.upscalers[4][0](x).clamp(0, 1))
    assert not np.array_equal(detail, faithful)
    assert np.array_equal(gen.generate("grass", seed=1, size=256), detail)
    assert np.array_equal(gen.generate("grass", seed=1, size=256, faithful=True), faithful)
    assert np.array_equal(next(gen.generate_many("grass", [1], size=256))[1], detail)
    assert np.array_equal(next(gen.generate_many("grass", [1], size=256, faithful=True))[1], faithful)
    assert np.abs(rt.generate("grass", seed=1, size=256).astype(int) - detail).max() <= 1
    assert np.abs(rt.generate("grass", seed=1, size=256, faithful=True).astype(int) - faithful).max() <= 1
    small = to_uint8(x)
    assert np.array_equal(gen.upscale(small, 4), to_uint8(gen.upscalers[4][0](x.new_tensor(small).permute(
        2, 0, 1)[None] / 255).clamp(0, 1)))


@pytest.mark.parametrize("channels, grain", [(2, False), (4, True)])
def test_a_detail_upscaler_with_noise_inputs_draws_them_from_the_seed_on_both_paths(tmp_path, channels, grain):
    from core import api
    from core.export_onnx import export_folder
    from core.imageio import to_uint8
    from core.upscaler import upscale_tiled
    from helpers import save_upscaler

    folder = make_models_folder(tmp_path / "models")
    model = tiny_upscaler(4, seed=7, noise=channels, grain=grain)
    save_upscaler(folder / "sr-x4-detail.safetensors", model, role="detail")
    export_folder(folder)
    gen, rt = api.load_generator(device="cpu", models_dir=folder), runtime.load(models_dir=folder)
    assert gen.detail[0].cfg == rt.detail.cfg == model.cfg

    x = gen.generate_gan("grass", seed=1, size=64)
    grain = torch.from_numpy(noise.upscaler_noise(channels, (128, 128), 1))  # the last stage's resolution: ×2
    with torch.inference_mode():
        want = to_uint8(model(x, grain).clamp(0, 1))
        mean = to_uint8(model(x).clamp(0, 1))
        # tiles with wrap-around context cut the noise as they cut the image
        assert torch.allclose(upscale_tiled(model, x, tile=24, noise=grain), model(x, grain), atol=1e-5)
    assert not np.array_equal(want, mean)  # the noise matters
    got = gen.generate("grass", seed=1, size=256)
    assert np.array_equal(got, want) and np.array_equal(next(gen.generate_many("grass", [1], size=256))[1], want)
    assert not np.array_equal(gen.generate("grass", seed=2, size=256)[:, :64], got[:, :64])
    assert np.abs(rt.generate("grass", seed=1, size=256).astype(int) - want).max() <= 1
    # the seed's GAN noise is untouched by the upscaler's stream
    assert np.array_equal(gen.generate("grass", seed=1, size=256, faithful=True),
                          api.load_generator(device="cpu", models_dir=folder).generate("grass", seed=1, size=256,
                                                                                        faithful=True))


@pytest.mark.parametrize("channels, grain, new", [(3, False, ["noise_in.weight"]),
                                                  (4, True, ["grain.weight", "grain.bias"])])
def test_noise_inputs_start_silent_and_keep_the_torus(channels, grain, new):
    from core.upscaler import Upscaler, UpscalerConfig, make_noise

    plain = tiny_upscaler(4, seed=3)
    grown = Upscaler(UpscalerConfig(scale=4, channels=8, blocks=1, noise=channels, grain=grain)).eval()
    missing, unexpected = grown.load_state_dict(plain.state_dict(), strict=False)
    assert missing == new and not unexpected
    x = torch.rand(1, 3, 12, 16)
    z = make_noise(grown.cfg, tuple(x.shape), torch.Generator().manual_seed(0))
    assert z is not None and z.shape == (1, channels, 24, 32)
    with torch.inference_mode():
        assert torch.equal(grown(x, z), plain(x))  # zero weights: the same function as the start
        model = tiny_upscaler(4, seed=4, noise=channels, grain=grain)
        y = model(x, z)
        assert not torch.equal(y, model(x))  # the noise matters
        mean, grain_part = model(x, z, parts=True)  # training's view: the output without its grain, and the grain
        assert torch.allclose(mean + grain_part, y) and torch.equal(mean, model(x)) == grain
        rolled = model(torch.roll(x, (3, 5), (2, 3)), torch.roll(z, (6, 10), (2, 3)))
    assert torch.allclose(rolled, torch.roll(y, (12, 20), (2, 3)), atol=1e-5)
    assert UpscalerConfig(noise=0).to_dict() == {"scale": 4, "channels": 32, "blocks": 4}  # headers as before
    assert model.cfg.to_dict().get("grain", False) is grain
    with pytest.raises(ValueError, match="no noise inputs"):
        plain(x, z)


def test_the_shipped_detail_upscaler_stands_in_only_where_a_folder_has_no_x4(tmp_path):
    from core import catalog

    for name in catalog.SHIPPED_UPSCALERS.values():
        (tmp_path / name).touch()
    names = lambda have: sorted(p.name for p in catalog.shipped_upscalers(have, tmp_path))  # noqa: E731
    assert names(set()) == sorted(catalog.SHIPPED_UPSCALERS.values())
    assert names({4}) == ["tessera_sr_x2.safetensors"]  # a folder's own ×4 stays generate's ×4
    assert names({catalog.DETAIL}) == ["tessera_sr_x2.safetensors", "tessera_sr_x4.safetensors"]
