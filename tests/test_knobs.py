"""The notebooks' knobs as users type them (`dmh.knobs`): every form a list knob arrives in, each class of refused
value naming its knob, a failed set-up that leaves the results folder as it was, and a knob run's own folder."""

from __future__ import annotations

import hashlib
import math

import pytest

from dmh.knobs import KnobError, number_text, parse, parse_lam, parse_lams, parse_seeds, parse_sigmas, parse_steps


@pytest.mark.parametrize("value", [[15, 30], (15.0, 30.0), "[15, 30]", "[15,30]", "15, 30", "- 15\n- 30"])
def test_a_list_knob_takes_every_form_it_arrives_in(value):
    assert parse_sigmas(value) == (15.0, 30.0)


@pytest.mark.parametrize("value", [25, 25.0, "25", "[25]"])
def test_one_number_is_a_list_of_one(value):
    assert parse_sigmas(value) == (25.0,)


def test_numbers_in_strings_are_numbers():
    assert parse_lam("0.05") == 0.05 and parse_steps("300") == 300 and parse_seeds("0, 1") == (0, 1)
    assert parse_lams("[1e-3, 0.01]") == (1e-3, 0.01)


REFUSED = [
    ("sigmas", parse_sigmas, [], "empty"),
    ("sigmas", parse_sigmas, "[]", "empty"),
    ("sigmas", parse_sigmas, [30, 30], "twice"),
    ("sigmas", parse_sigmas, [22.5], "whole"),
    ("sigmas", parse_sigmas, [0], "range"),
    ("sigmas", parse_sigmas, [150], "range"),
    ("sigmas", parse_sigmas, [-15], "range"),
    ("sigmas", parse_sigmas, [math.nan], "finite"),
    ("sigmas", parse_sigmas, [math.inf], "finite"),
    ("sigmas", parse_sigmas, "abc", "not a number"),
    ("sigmas", parse_sigmas, True, "not a list"),
    ("sigmas", parse_sigmas, [True], "finite number"),
    ("lams", parse_lams, [-0.1], "negative"),
    ("lams", parse_lams, [0.1, 0.1], "twice"),
    ("lam", parse_lam, 0, "separate"),
    ("lam", parse_lam, 0.0, "separate"),
    ("lam", parse_lam, -1, "negative"),
    ("lam", parse_lam, "abc", "not a number"),
    ("lam", parse_lam, True, "finite number"),
    ("lam", parse_lam, math.nan, "finite"),
    ("lam", parse_lam, [0.1], "list"),
    ("seeds", parse_seeds, [0, 0], "twice"),
    ("seeds", parse_seeds, [1.7], "whole"),
    ("seeds", parse_seeds, [-1], "negative"),
    ("seeds", parse_seeds, [], "empty"),
    ("steps", parse_steps, 0, "positive"),
    ("steps", parse_steps, 2.5, "whole"),
    ("steps", parse_steps, "many", "not a number"),
]


@pytest.mark.parametrize("knob, fn, value, why", REFUSED, ids=[f"{k}={v!r}" for k, _, v, _ in REFUSED])
def test_each_refusal_names_its_knob_and_what_it_accepts(knob, fn, value, why):
    with pytest.raises(KnobError) as e:
        fn(value, knob)
    msg = str(e.value)
    assert msg.startswith(f"{knob}: ") and why in msg and "give " in msg


def test_colour_notebooks_take_the_colour_models_range(tmp_path):
    with pytest.raises(KnobError, match="sigmas: 60 is outside the range.*to 55"):
        parse("07", "cpu", tmp_path, {"sigmas": [25, 60]})
    assert parse("04", "cpu", tmp_path, {"sigmas": [25, 60]}).sigmas == (25.0, 60.0)
    assert parse("02", "cpu", tmp_path, {"sigmas": [0, 30]}).sigmas == (0.0, 30.0)  # 02: no denoiser, 0 is clean


@pytest.mark.parametrize(
    "preset, out_root, knobs, message",
    [
        ("paper", None, {}, "torchrun -m dmh.ddp"),
        ("gpu", None, {}, "preset: 'gpu' is not a preset"),
        ("cpu", "FILE", {}, "out_root: .* is a file"),
        ("cpu", None, {"foo": 1}, "no knob 'foo'"),
        ("cpu", None, {"sigma": [30, 60]}, "sigma: give one noise level"),
    ],
)
def test_preset_out_root_and_unknown_knobs_are_refused_by_name(tmp_path, preset, out_root, knobs, message):
    (tmp_path / "a_file").write_text("x")
    root = tmp_path / "a_file" if out_root == "FILE" else tmp_path
    with pytest.raises(KnobError, match=message):
        parse("03", preset, root, knobs)


def test_a_knob_run_has_its_own_folder_named_by_what_differs(tmp_path):
    assert parse("04", "cpu", tmp_path, {"lam": None, "seeds": [0, 1, 2]}).folder == tmp_path / "cpu"
    assert parse("04", "cpu", tmp_path, {"lam": 0.05}).folder == tmp_path / "cpu" / "lam=0.05"
    k = parse("04", "cpu", tmp_path, {"sigmas": "[15, 30]", "steps": "300"})
    assert k.folder == tmp_path / "cpu" / "sigmas=15,30_steps=300"
    assert k.overrides == {"task_sigmas": (15.0, 30.0), "joint_steps": 300}
    # 03's sweep always holds 0, the paper's and the code's lambdas: naming only those is the preset's own run
    assert parse("03", "smoke", tmp_path, {"lams": [0.004]}).folder == tmp_path / "smoke"
    assert parse("03", "smoke", tmp_path, {"lams": [0.05]}).folder.name == "lams=0,0.004,0.02,0.05,0.25,0.5"


def test_two_different_lambdas_never_share_a_name():
    from dmh.runs import Run

    assert number_text(0.0040000001) != number_text(0.004) and float(number_text(0.0040000001)) == 0.0040000001
    assert Run("A", 0.004).tag != Run("A", 0.0040000001).tag
    assert Run("A", 0.004).tag == "A_lam0.004_seed0_600"  # the kept runs' names are unchanged
    assert number_text(1e-5) == "1e-05" and number_text(0.25) == "0.25"


def _tree(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("knobs", [{"sigmas": []}, {"lam": 0}, {"seeds": [0, 0]}, {"steps": -1}, {"sigmas": [22.5]}])
def test_a_refused_setup_changes_no_file(tmp_path, knobs):
    from dmh import study

    run = tmp_path / "smoke"
    (run / "ckpt" / "grey_separate").mkdir(parents=True)
    (run / "table2.json").write_text('{"rows": {}}')
    (run / "ckpt" / "grey_separate" / "step_0000006.pt").write_bytes(b"weights")
    before = _tree(tmp_path)
    with pytest.raises(KnobError):
        study.setup("04", "smoke", tmp_path, **knobs)
    assert _tree(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["smoke"]


def test_a_knob_run_reads_the_preset_run_and_shares_its_checkpoints(tmp_path):
    from dmh import study
    from dmh.layout import ckpt_dir, require

    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "ablation.json").write_text("{}")
    p, out, k = study.setup("04", "smoke", tmp_path, lam=0.05, sigmas="[30]")
    assert out == tmp_path / "smoke" / "lam=0.05_sigmas=30" and p.task_sigmas == (30.0,) and k.lam == 0.05
    assert require(out / "ablation.json") == tmp_path / "smoke" / "ablation.json"
    assert ckpt_dir(out, "A_lam0.05_seed0_4") == tmp_path / "smoke" / "ckpt" / "A_lam0.05_seed0_4"
    (out / "ablation.json").write_text("{}")  # what the knob run made itself comes first
    assert require(out / "ablation.json") == out / "ablation.json"


def test_06_names_the_columns_04_and_05_made(tmp_path):
    from dmh import study

    run = tmp_path / "smoke"
    run.mkdir()
    for name in ("table2.json", "table3.json"):
        (run / name).write_text('{"rows": {"noisy": {"30": {}, "60": {}}}}')
    with pytest.raises(KnobError, match="sigmas: table2.json .* has columns 30, 60; give some of them, got 45"):
        study.setup("06", "smoke", tmp_path, sigmas=[45])
    assert study.setup("06", "smoke", tmp_path, sigmas=30)[2].sigmas == (30.0,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lam": None}, "lam: None is not a finite number"),
        ({"lam": "abc"}, "lam: 'abc' is not a number"),
        ({"lam": True}, "lam: True is not a finite number"),
        ({"lam": -0.1}, "lam: -0.1 is negative"),
        ({"lam": 0.1, "seed": 1.7}, "seed: 1.7 is not a whole number"),
        ({"lam": 0.1, "steps": 0}, "steps: 0 is not positive"),
    ],
)
def test_the_explorer_refuses_its_inputs_by_name_before_training(kwargs, message):
    from dmh.widgets import cpu_size_explorer

    calls = []
    ex = cpu_size_explorer()
    ex.finetuner = lambda *a: calls.append(a) or ("x", None)
    with pytest.raises(KnobError, match=message):
        ex.finetune(**kwargs)
    assert calls == []
