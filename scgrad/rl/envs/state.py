"""An environment's state as plain data, for exact resume without pickles.

``capture(vector_env)`` walks the vector env and, for each sub-environment, its wrapper chain
down to the unwrapped env, and records per object:

- plain attributes: numbers, strings, ``None``, numeric NumPy arrays and scalars, and lists,
  tuples, dicts and deques of these (time-limit counters, CartPole's state, ...);
- NumPy ``Generator`` attributes, as their ``bit_generator.state`` dict (the env's
  ``np_random``), and the random streams of its spaces;
- native state no attribute holds, through a handler per simulator (``NATIVE``): MuJoCo's
  physics via ``mj_getState`` (the integration state), an Atari emulator via ``cloneState``.

Everything else (models, renderers, specs, the links between wrappers) is rebuilt by making
the environment afresh: ``restore(vector_env, state)`` writes the recorded state onto a newly
made vector env of the same id and refuses, with one-line ``CheckpointError``, a state whose
structure or values do not fit it. Nothing in the state is code, so a checkpoint can be read
with ``torch.load(weights_only=True)``.

A new simulator is one more handler: an object with ``name``, ``owns`` (attribute names it
replaces), ``applies(obj)``, ``capture(obj) -> ndarray`` and ``restore(obj, ndarray)``.
"""
from __future__ import annotations

import collections
from typing import Any, Dict, FrozenSet, List

import gymnasium as gym
import numpy as np

from scgrad.rl.errors import CheckpointError

FORMAT = "scgrad.rl env state 1"
#: Array and scalar dtypes a state may hold (checkpoint.py allow-lists exactly these to load).
DTYPES = tuple(np.dtype(t) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                                     np.uint32, np.uint64, np.float16, np.float32, np.float64))
#: NumPy bit generators a ``Generator`` may be rebuilt with.
BIT_GENERATORS = {name: getattr(np.random, name) for name in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")}
_SCALARS = (bool, int, float, str, type(None))
_MISSING = object()


class _Unplain(Exception):
    """A value is not plain data (it is skipped when captured)."""


class MujocoPhysics:
    """MuJoCo's simulation state (time, qpos, qvel, act, warm start, controls, applied forces,
    mocap, ...): ``mj_getState`` with ``mjSTATE_INTEGRATION`` into a float64 array."""

    name = "mujoco"
    owns: FrozenSet[str] = frozenset({"model", "data"})

    @staticmethod
    def applies(obj: Any) -> bool:
        """Whether ``obj`` holds a MuJoCo model and data (gymnasium's ``MujocoEnv``)."""
        return all(type(getattr(obj, a, None)).__module__.startswith("mujoco") for a in ("model", "data"))

    @staticmethod
    def capture(obj: Any) -> np.ndarray:
        """The integration state of ``obj.data``."""
        import mujoco
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(obj.model, spec), dtype=np.float64)
        mujoco.mj_getState(obj.model, obj.data, state, spec)
        return state

    @staticmethod
    def restore(obj: Any, state: np.ndarray) -> None:
        """Set ``obj.data`` to a state from :meth:`capture` (of the same model)."""
        import mujoco
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        size = mujoco.mj_stateSize(obj.model, spec)
        _check(isinstance(state, np.ndarray) and state.dtype == np.float64 and state.shape == (size,),
               f"MuJoCo state is not {size} float64 numbers")
        mujoco.mj_setState(obj.model, obj.data, np.ascontiguousarray(state), spec)
        mujoco.mj_forward(obj.model, obj.data)  # derived quantities (positions, contacts) for readers


class AleEmulator:
    """An Atari emulator's state (RAM, CPU, TIA, frame counters): ``ALEInterface.cloneState()``
    serialised to uint8 bytes. The sticky-action stream is not in it: ``envs.atari`` draws sticky
    actions from the env's ``np_random``, which is captured as a plain attribute."""

    name = "ale"
    owns: FrozenSet[str] = frozenset({"ale"})

    @staticmethod
    def applies(obj: Any) -> bool:
        """Whether ``obj`` holds an ``ale`` emulator (``envs.atari.AtariEnv``)."""
        return type(getattr(obj, "ale", None)).__module__.startswith("ale_py")

    @staticmethod
    def capture(obj: Any) -> np.ndarray:
        """The emulator's state as bytes [n] uint8."""
        return np.frombuffer(obj.ale.cloneState().__getstate__(), dtype=np.uint8).copy()

    @staticmethod
    def restore(obj: Any, state: np.ndarray) -> None:
        """Put the emulator in a state from :meth:`capture`."""
        from ale_py import ALEState

        _check(isinstance(state, np.ndarray) and state.dtype == np.uint8 and state.ndim == 1,
               "the Atari state is not a byte string")
        try:
            obj.ale.restoreState(ALEState(state.tobytes()))
        except Exception as error:  # ale-py's own error types: a state of another game, truncated bytes
            raise CheckpointError(f"the checkpoint's Atari state does not fit this game ({error})") from None


#: Handlers of state that no plain attribute holds; the first that applies to an object is used.
NATIVE = (MujocoPhysics(), AleEmulator())


# ------------------------------------------------------------------ the walk
def capture(vector_env: gym.vector.VectorEnv) -> Dict[str, Any]:
    """The state of ``vector_env`` (which has ``envs``, e.g. ``vector.SerialVectorEnv``) as
    plain data: dicts, lists, numbers, strings and NumPy arrays only."""
    return {"format": FORMAT, "vector": _capture_object(vector_env),
            "envs": [[_capture_object(layer) for layer in _chain(env)] for env in vector_env.envs]}


def restore(vector_env: gym.vector.VectorEnv, state: Any) -> None:
    """Write ``capture``'s output onto ``vector_env``, a freshly made vector env of the same
    id and size; ``CheckpointError`` in one line if the state does not fit it."""
    _check(isinstance(state, dict) and state.get("format") == FORMAT, "not an environment state")
    envs = state.get("envs")
    _check(isinstance(envs, list) and len(envs) == len(vector_env.envs),
           f"it holds {len(envs) if isinstance(envs, list) else 'no'} environments, the run has "
           f"{len(vector_env.envs)}")
    pairs = [(vector_env, state.get("vector"), "the vector env")]
    for i, (env, layers) in enumerate(zip(vector_env.envs, envs)):
        chain = _chain(env)
        _check(isinstance(layers, list) and len(layers) == len(chain),
               f"environment {i} has {len(chain)} wrapper layers, the state a different number")
        pairs += [(layer, saved, f"environment {i}") for layer, saved in zip(chain, layers)]
    for obj, saved, where in pairs:  # every class first: nothing is written to an env of another kind
        _check(isinstance(saved, dict) and saved.get("class") == _class_name(obj),
               f"{where}: the state is of a {saved.get('class') if isinstance(saved, dict) else '?'}, "
               f"the run has a {_class_name(obj)}")
    for obj, saved, where in pairs:
        _restore_object(obj, saved, where)


def _chain(env: gym.Env) -> List[gym.Env]:
    """The wrappers of ``env`` from the outside in, then the unwrapped env."""
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def _class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _capture_object(obj: Any) -> Dict[str, Any]:
    native = next((h for h in NATIVE if h.applies(obj)), None)
    attrs = {}
    for name, value in vars(obj).items():
        if native is not None and name in native.owns:
            continue
        try:
            attrs[name] = _encode(value)
        except _Unplain:
            pass  # rebuilt by making the env afresh (models, renderers, specs, wrapped envs)
    return {"class": _class_name(obj), "attrs": attrs,
            "native": None if native is None else {"kind": native.name, "state": native.capture(obj)}}


def _restore_object(obj: Any, saved: Any, where: str) -> None:
    _check(isinstance(saved.get("attrs"), dict), f"{where}: no attributes")
    native = next((h for h in NATIVE if h.applies(obj)), None)
    saved_native = saved.get("native")
    if native is None:
        _check(saved_native is None, f"{where}: the state holds {_kind(saved_native)} state the env lacks")
    else:
        _check(isinstance(saved_native, dict) and saved_native.get("kind") == native.name,
               f"{where}: the state lacks its {native.name} state")
        native.restore(obj, saved_native.get("state"))
    current = {name: value for name, value in vars(obj).items() if _encodable(value)}
    # the state may hold attributes a fresh env creates later (its np_random on the first
    # reset), but it must hold all the fresh env has
    missing = sorted(set(current) - set(saved["attrs"]))
    _check(not missing, f"{where}: the state lacks the attributes {missing}")
    for name, value in saved["attrs"].items():
        setattr(obj, name, _decode(value, current.get(name), f"{where}: {name}"))


def _kind(saved_native: Any) -> str:
    return saved_native.get("kind", "?") if isinstance(saved_native, dict) else "native"


def _encodable(value: Any) -> bool:
    try:
        _encode(value)
        return True
    except _Unplain:
        return False


# ------------------------------------------------------------------ values
# Encoded values: a scalar (bool, int, float, str, None), a numeric ndarray, a list (a list's
# items), or a dict tagged by "$" (every other kind; a dict value is always a tag).
def _encode(value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype not in DTYPES:
            raise _Unplain
        return value.copy()
    if isinstance(value, np.generic):
        if value.dtype not in DTYPES:
            raise _Unplain
        return {"$": "scalar", "value": np.asarray(value)}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return {"$": "tuple", "items": [_encode(v) for v in value]}
    if isinstance(value, collections.deque):
        return {"$": "deque", "items": [_encode(v) for v in value], "maxlen": value.maxlen}
    if type(value) is dict:
        return {"$": "dict", "items": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, np.random.Generator):
        return {"$": "generator", "state": _encode(value.bit_generator.state)}
    if isinstance(value, gym.Space):
        return _encode_space(value)
    raise _Unplain


def _encode_space(space: gym.Space) -> Dict[str, Any]:
    rng = space._np_random  # created lazily: None until seeded or sampled
    subspaces = getattr(space, "spaces", None)
    if isinstance(subspaces, dict):
        subspaces = list(subspaces.values())
    return {"$": "space", "class": _class_name(space), "rng": None if rng is None else _encode(rng),
            "spaces": [_encode_space(s) for s in subspaces] if isinstance(subspaces, (list, tuple)) else []}


def _decode(saved: Any, current: Any, where: str) -> Any:
    """The value ``saved`` encodes, checked against ``current`` (the fresh env's value of the
    same attribute); a Generator or a space is updated in place and returned."""
    if isinstance(current, gym.Space):
        _restore_space(current, saved, where)
        return current
    if isinstance(current, np.random.Generator) and isinstance(saved, dict) and saved.get("$") == "generator":
        _set_generator(current, _generator_state(saved, where), where)
        return current
    value = _plain(saved, where)
    if current is not None and value is not None:
        _check_like(value, current, where)
    return value


def _plain(saved: Any, where: str) -> Any:
    if isinstance(saved, _SCALARS):
        return saved
    if isinstance(saved, np.ndarray):
        _check(saved.dtype in DTYPES, f"{where}: arrays of {saved.dtype} are not state")
        return saved.copy()
    if isinstance(saved, list):
        return [_plain(v, where) for v in saved]
    _check(isinstance(saved, dict), f"{where}: {type(saved).__name__} is not state")
    tag, items = saved.get("$"), saved.get("items")
    if tag == "scalar":
        value = saved.get("value")
        _check(isinstance(value, np.ndarray) and value.shape == () and value.dtype in DTYPES, f"{where}: bad scalar")
        return value[()]
    if tag == "generator":
        state = _generator_state(saved, where)
        generator = np.random.Generator(BIT_GENERATORS[state["bit_generator"]]())
        _set_generator(generator, state, where)
        return generator
    _check(isinstance(items, list), f"{where}: bad '{tag}' entry")
    if tag == "tuple":
        return tuple(_plain(v, where) for v in items)
    if tag == "deque":
        maxlen = saved.get("maxlen")
        _check(maxlen is None or (isinstance(maxlen, int) and maxlen >= 0), f"{where}: bad deque length")
        return collections.deque((_plain(v, where) for v in items), maxlen)
    if tag == "dict":
        _check(all(isinstance(p, list) and len(p) == 2 for p in items), f"{where}: bad dict entry")
        try:
            return {_plain(k, where): _plain(v, where) for k, v in items}
        except TypeError:  # an unhashable key
            raise CheckpointError(f"the environment state does not fit this run: {where}: bad dict key") from None
    raise _mismatch(f"{where}: unknown entry '{tag}'")


def _check_like(value: Any, current: Any, where: str) -> None:
    """Garbage guard: a recorded value must be of the kind the fresh env holds."""
    if isinstance(current, np.ndarray) or isinstance(value, np.ndarray):
        _check(isinstance(value, np.ndarray) and isinstance(current, np.ndarray)
               and value.dtype == current.dtype and value.shape == current.shape,
               f"{where}: expected an array like the env's {_describe(current)}, got {_describe(value)}")
        return
    numbers = (int, float, np.number, np.bool_)
    same = (isinstance(value, numbers) and isinstance(current, numbers)) or type(value) is type(current)
    _check(same, f"{where}: expected {type(current).__name__}, got {type(value).__name__}")


def _describe(value: Any) -> str:
    return f"{value.dtype}{list(value.shape)}" if isinstance(value, np.ndarray) else type(value).__name__


def _generator_state(saved: Dict[str, Any], where: str) -> Dict[str, Any]:
    """The ``bit_generator.state`` dict a "generator" entry encodes."""
    state = _plain(saved.get("state"), where)
    _check(isinstance(state, dict) and state.get("bit_generator") in BIT_GENERATORS,
           f"{where}: not the state of a known random stream")
    return state


def _set_generator(generator: np.random.Generator, state: Dict[str, Any], where: str) -> None:
    _check(state["bit_generator"] == type(generator.bit_generator).__name__,
           f"{where}: the random stream is not a {type(generator.bit_generator).__name__} state")
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as error:
        raise _mismatch(f"{where}: bad random stream ({' '.join(str(error).split())[:100]})") from None


def _restore_space(space: gym.Space, saved: Any, where: str) -> None:
    _check(isinstance(saved, dict) and saved.get("$") == "space" and saved.get("class") == _class_name(space),
           f"{where}: expected the state of a {_class_name(space)}")
    rng = saved.get("rng")
    if rng is None:
        space._np_random = None
    elif space._np_random is None:
        space._np_random = _plain(rng, where)
        _check(isinstance(space._np_random, np.random.Generator), f"{where}: bad random stream")
    else:
        _check(isinstance(rng, dict) and rng.get("$") == "generator", f"{where}: bad random stream")
        _set_generator(space._np_random, _generator_state(rng, where), where)
    subspaces = getattr(space, "spaces", None)
    subspaces = list(subspaces.values()) if isinstance(subspaces, dict) else \
        list(subspaces) if isinstance(subspaces, (list, tuple)) else []
    _check(isinstance(saved.get("spaces"), list) and len(saved["spaces"]) == len(subspaces),
           f"{where}: the space's parts differ")
    for sub, sub_saved in zip(subspaces, saved["spaces"]):
        _restore_space(sub, sub_saved, where)


def _mismatch(detail: str) -> CheckpointError:
    return CheckpointError(f"the environment state does not fit this run: {detail}")


def _check(condition: bool, detail: str) -> None:
    if not condition:
        raise _mismatch(detail)
