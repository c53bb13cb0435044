"""examples/rl_ntm: the tasks and curriculum, the memory tapes against a full-memory reference,
the machine's interface rules, the gradient check against the exact gradient over every action
sequence (with a negative control), and the command line with exact resume (no learning runs)."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

import scgrad as sg
from scgrad.testing import UnbiasednessError, assert_unbiased, exact_gradient

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "rl_ntm"
sys.path.insert(0, str(FOLDER))
for _name in ("machine", "memory", "tasks", "train"):  # another example's module of the same name
    if Path(getattr(sys.modules.get(_name), "__file__", None) or FOLDER / "x").parent != FOLDER:
        del sys.modules[_name]
import machine  # noqa: E402
import memory  # noqa: E402
import tasks  # noqa: E402
import train  # noqa: E402


# ------------------------------------------------------------------ tasks
def test_each_task_builds_its_target_from_its_tape():
    g = torch.Generator().manual_seed(0)
    level = tasks.Level(4)
    tape, target = tasks.copy_example(level, g)
    assert target == tape + [tasks.END] and len(tape) == 4 and tasks.END not in tape
    tape, target = tasks.duplicated_input_example(level, g)
    assert tape[:-1] == [s for s in target[:-1] for _ in range(3)] and tape[-1] == tasks.BLANK
    tape, target = tasks.reverse_example(level, g)
    assert target == tape[::-1] + [tasks.END]
    tape, target = tasks.repeat_copy_example(tasks.Level(4, 3), g)
    assert tape[0] == tasks.THREE and tape[-1] == tasks.DOT and target == tape[1:] * 3
    assert tasks.TASKS["forward_reverse"].forward_only and not tasks.TASKS["reverse"].forward_only
    for task in tasks.TASKS.values():  # the held-out test is longer than every curriculum level
        assert task.test.length > max(level.length for level in task.levels)


def test_batches_pad_and_budget_their_examples():
    task = tasks.TASKS["reverse"]
    batch = tasks.make_batch(task, [0, 4], torch.Generator().manual_seed(1))
    assert batch.lengths.tolist() == [2, 6] and batch.tape.shape == (2, 5)
    assert batch.tape[0, 1:].eq(tasks.BLANK).all() and batch.steps.tolist() == [1 + 2 + 2, 5 + 6 + 2]
    test = tasks.make_batch(task, [0] * 3, torch.Generator().manual_seed(1), test=True)
    assert test.lengths.tolist() == [51] * 3 and test.levels.tolist() == [-1] * 3


def curriculum_law(level: int, levels: int):
    """P(draw = j) of the original's scheme, exactly: 10% uniform over all levels; else a
    geometric extra k (P = 2^−(k+1)) gives near = min(level + k, top), then 25% uniform over
    0..near and 75% near itself."""
    top, law = levels - 1, [0.1 / levels] * levels
    for k in range(60):
        near, pk = min(level + k, top), 0.5 ** (k + 1)
        law[near] += 0.9 * 0.75 * pk
        for j in range(near + 1):
            law[j] += 0.9 * 0.25 * pk / (near + 1)
    return law


def test_the_curriculum_draws_around_the_level_as_the_original():
    """Level 5 of 20, 20,000 draws against the exact law: P(level 5) and P(above 5) within 0.02
    (more than 5 standard errors, sqrt(0.25 / 20,000) = 0.0035); reproducible by its seed."""
    task = tasks.TASKS["copy"]
    draws = tasks.curriculum_levels(task, 5, 20_000, torch.Generator().manual_seed(0))
    counts, law = Counter(draws), curriculum_law(5, 20)
    assert min(draws) == 0 and max(draws) == 19
    assert abs(counts[5] / 20_000 - law[5]) < 0.02
    assert abs(sum(v for k, v in counts.items() if k > 5) / 20_000 - sum(law[6:])) < 0.02
    assert abs(sum(law) - 1) < 1e-9
    assert draws == tasks.curriculum_levels(task, 5, 20_000, torch.Generator().manual_seed(0))


# ------------------------------------------------------------------ memory
def full_memory_reads(positions, writes, cells, width):
    """The reference: a full [B, N, width] memory rewritten at each write."""
    mem = memory.initial_cells(cells, width).expand(len(writes[0][0]), cells, width).clone()
    out = []
    rows = torch.arange(len(writes[0][0]))
    for read_at, (write_at, value) in zip(positions, writes):
        out.append(mem[rows[:, None], read_at % cells])
        mem = mem.clone()
        mem[rows, write_at % cells] = value
    return out


@pytest.mark.parametrize("tape_class", [memory.Tape, memory.FastTape], ids=["general", "fast"])
def test_both_tapes_read_and_backpropagate_as_a_full_memory(tape_class):
    torch.manual_seed(0)
    B, N, W, T = 4, 7, 3, 6
    values = [torch.randn(B, W, requires_grad=True) for _ in range(T)]
    reads = [torch.randint(-9, 9, (B, 5)) for _ in range(T)]
    heads = [torch.randint(-9, 9, (B,)) for _ in range(T)]
    tape = tape_class(B, N, W, T)
    ours = []
    for r, h, v in zip(reads, heads, values):
        ours.append(tape.read(r))
        tape.write(h, v)
    reference = full_memory_reads(reads, list(zip(heads, values)), N, W)
    weights = [torch.randn(B, 5, W) for _ in range(T)]
    loss_ours = sum((o * w).sum() for o, w in zip(ours, weights))
    loss_ref = sum((o * w).sum() for o, w in zip(reference, weights))
    assert torch.allclose(loss_ours, loss_ref)
    dense = lambda grads: [torch.zeros(B, W) if g is None else g for g in grads]  # noqa: E731  (the last write is never read)
    ours_grad = dense(torch.autograd.grad(loss_ours, values, allow_unused=True))
    ref_grad = dense(torch.autograd.grad(loss_ref, values, allow_unused=True))
    assert all(torch.allclose(a, b) for a, b in zip(ours_grad, ref_grad))
    assert sum(g.abs().sum() for g in ref_grad) > 0


# ------------------------------------------------------------------ the machine
def small_model(**kwargs):
    torch.manual_seed(0)
    return machine.Controller(machine.MachineSettings(hidden=8, cells=16, action_scale=1.0, **kwargs))


@pytest.mark.parametrize("direct_access", [False, True])
def test_every_target_symbol_is_written_exactly_once(direct_access):
    task = tasks.TASKS["repeat_copy"]
    batch = tasks.make_batch(task, list(range(len(task.levels))), torch.Generator().manual_seed(2))
    episode = machine.run(small_model(direct_access=direct_access), batch, None)
    written = torch.stack(episode.written).sum(0)
    assert torch.equal(written, batch.lengths)


def test_forward_only_input_heads_never_move_back():
    model = small_model(forward_only=True)
    batch = tasks.make_batch(tasks.TASKS["forward_reverse"], [3, 7], torch.Generator().manual_seed(3))
    with sg.Graph() as g:
        machine.run(model, batch, g)
    moves = torch.stack([g[f"in{t}"].value for t in range(int(batch.steps.max()))])
    assert (moves != 0).all()  # index 0 is −1, never drawn (its logit is −inf)


def tiny_batch():
    """One example whose whole run is 2 steps: tape [5, 9], one target symbol."""
    return tasks.Batch(tape=torch.tensor([[5, 9]]), target=torch.tensor([[9]]), lengths=torch.tensor([1]),
                       steps=torch.tensor([2]), levels=torch.tensor([0]))


def controller_params(model):
    baseline = {id(p) for p in model.baseline_head.parameters()}
    return [p for p in model.parameters() if id(p) not in baseline]


def estimates(model, n_graphs=300, copies=100):
    """n_graphs independent estimates, each the mean over ``copies`` copies of the tiny example."""
    one = tiny_batch()
    batch = tasks.Batch(one.tape.expand(copies, -1), one.target.expand(copies, -1), one.lengths.expand(copies),
                        one.steps.expand(copies), one.levels.expand(copies))
    params = controller_params(model)
    out = []
    for _ in range(n_graphs):
        graph = sg.Graph()
        machine.run(model, batch, graph)
        grads = torch.autograd.grad(graph.surrogate(), params, allow_unused=True)
        out.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]))
    return torch.stack(out)


def exact(model):
    batch = tiny_batch()
    return exact_gradient(lambda g: machine.run(model, batch, g, exact=True), controller_params(model), batch_ndim=1)


def test_the_estimated_gradient_matches_the_exact_one_over_every_action_sequence():
    """2 steps × 3 sampled actions (3 · 3 · 2 outcomes each): exact by enumeration; 300
    estimates, each a mean over 100 examples, at alpha = 1e-4 (Bonferroni over the components)."""
    model = small_model()
    torch.manual_seed(4)
    assert_unbiased(estimates(model).double(), exact(model).double(), 1e-4)


def test_a_forgotten_action_node_is_caught(monkeypatch):
    """Negative control: memory moves sampled outside the graph (their score terms lost)."""
    model = small_model()
    reference = exact(model)
    act = machine._act
    monkeypatch.setattr(machine, "_act", lambda graph, name, *rest: act(None if name.startswith("mem") else graph,
                                                                         name, *rest))
    torch.manual_seed(4)
    with pytest.raises(UnbiasednessError):
        assert_unbiased(estimates(model).double(), reference.double(), 1e-4)


# ------------------------------------------------------------------ the command line
def test_the_command_line_prints_its_last_line_resumes_exactly_and_refuses_bad_input(tmp_path, capsys):
    torch.set_num_threads(1)
    args = ["--task", "reverse", "--batch", "16", "--updates-per-epoch", "3", "--test-examples", "8",
            "--checkpoint-every", "1"]
    assert train.main([*args, "--updates", "6", "--out", str(tmp_path / "whole")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    fields = dict(item.split("=") for item in last.split())
    assert list(fields) == ["solved", "updates", "test_error", "level"]
    assert fields["solved"] in ("true", "false") and fields["updates"] == "6" and 0 <= float(fields["test_error"]) <= 1
    assert train.main([*args, "--updates", "3", "--out", str(tmp_path / "cut")]) == 0
    assert train.main(["--resume", str(tmp_path / "cut"), "--updates", "6"]) == 0
    from scgrad.rl.run.checkpoint import read_checkpoint
    from scgrad.rl.run.folder import read_progress

    untimed = [[{k: v for k, v in row.items() if k not in ("Time", "ExamplesPerSecond")}
                for row in read_progress(tmp_path / name)] for name in ("whole", "cut")]
    assert untimed[0] == untimed[1] and len(untimed[0]) == 2
    a, b = read_checkpoint(tmp_path / "whole")[1], read_checkpoint(tmp_path / "cut")[1]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]) and a["curriculum"] == b["curriculum"]
    capsys.readouterr()
    assert train.main(["--task", "sort", "--out", str(tmp_path / "x")]) == 2
    assert "--task must be one of" in capsys.readouterr().err


def test_the_soft_memory_variant_reads_every_cell_and_samples_no_memory_move():
    model = small_model(memory="soft")
    batch = tasks.make_batch(tasks.TASKS["reverse"], [2, 5], torch.Generator().manual_seed(4))
    graph = sg.Graph()
    episode = machine.run(model, batch, graph)
    assert not any(name.startswith("mem") for name in graph.nodes)
    assert torch.equal(torch.stack(episode.written).sum(0), batch.lengths)
    graph.surrogate().backward()
    assert model.gate.weight.grad.abs().sum() > 0 and model.moves.weight.grad[3:6].abs().sum() > 0
    head = machine.SoftHead(model.s, 2, 5, False)
    head.move(torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))  # +1 and −1: the weight moves one cell
    assert head.weights[0, 1] == 1 and head.weights[1, -1] == 1
