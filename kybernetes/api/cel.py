"""CEL for admission policies and CRD validation rules: environments, compiling,
evaluating, and the Kubernetes extension functions, with errors worded as
kube-apiserver words them.

The runtime is `cel-expr-python` (Google's CEL C++ runtime): measured against the pure
Python `cel-python` in benchmarks/cel_bench.py, it is about two orders of magnitude
faster per evaluation and gives the spec's answers on macros, optionals and numeric
types. Objects are handed to it as the JSON dicts we store (every variable is `dyn`),
so type errors in a field path show at evaluation, not at compile time.

Bounds, so a hostile expression cannot hold the event loop: an expression longer than
`MAX_EXPRESSION_LENGTH` is refused at compile time, and the runtime stops an evaluation
after 10,000 comprehension iterations in all (its built-in budget: `all`, `exists`,
`map`, `filter` over a list of 100 inside one over 100 reach it), reported as
upstream's "operation cancelled: actual cost limit exceeded". Everything else an
expression can do is linear in its inputs, which the request body limit bounds.

Extension functions beyond the runtime's strings, optional and bindings (`cel.bind`) libraries (Kubernetes'
`library` package): lists `isSorted`, `sum`, `min`, `max`, `indexOf`, `lastIndexOf`;
regex `find`, `findAll`; `quantity()` with `isQuantity`, `asInteger`,
`asApproximateFloat`, `isInteger`, `sign`, `add`, `sub`, `compareTo`, `isGreaterThan`,
`isLessThan`; and `authorizer` checks (the caller binds the decision function with
`authorizing`). Not provided: `url()`, `ip()`/`cidr()`, `format` of quantities,
semver, and type-checking against the kind's schema.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_bindings, ext_optional, ext_strings

from kybernetes.api.quantity import parse_quantity

MAX_EXPRESSION_LENGTH = 5 * 1024  # upstream's CEL size limits are of this order per rule

_DYN = cel.Type.DYN
_MAP = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
_LIST = cel.Type.List(cel.Type.DYN)
_STR = cel.Type.STRING
_BOOL = cel.Type.BOOL
_INT = cel.Type.INT

# Quantities and authorizer builders travel as maps with a marker key: the runtime takes
# no opaque Python values, and a map keeps member calls typed.
_QUANTITY = "__quantity__"
_AUTHZ = "__authorizer__"

# The decision for `authorizer...check(verb)`: attributes dict → (allowed, reason).
AuthorizeFn = Callable[[dict[str, Any]], tuple[bool, str]]
_authorize: contextvars.ContextVar[AuthorizeFn | None] = contextvars.ContextVar("cel_authorize", default=None)


class CelError(Exception):
    """A CEL expression that does not compile or fails when evaluated; `str()` is the
    text kube-apiserver shows."""


class CostExceeded(CelError):
    """An evaluation stopped by the runtime's budget."""


@dataclass(frozen=True)
class Program:
    text: str
    expr: Any  # cel.Expression
    returns: str  # the checked type's name ("bool", "string", "dyn", ...)


# -- Kubernetes library functions -------------------------------------------------------

def _is_sorted(items: list[Any]) -> bool:
    return all(a <= b for a, b in zip(items, items[1:], strict=False))


def _sum(items: list[Any]) -> Any:
    return sum(items) if items else 0


def _min(items: list[Any]) -> Any:
    if not items:
        raise ValueError("min called on empty list")
    return min(items)


def _max(items: list[Any]) -> Any:
    if not items:
        raise ValueError("max called on empty list")
    return max(items)


def _index_of(items: list[Any], value: Any) -> int:
    for i, item in enumerate(items):
        if item == value:
            return i
    return -1


def _last_index_of(items: list[Any], value: Any) -> int:
    for i in range(len(items) - 1, -1, -1):
        if items[i] == value:
            return i
    return -1


def _find(text: str, pattern: str) -> str:
    m = re.search(pattern, text)
    return m.group(0) if m else ""


def _find_all(text: str, pattern: str) -> list[str]:
    return [m.group(0) for m in re.finditer(pattern, text)]


def _quantity(text: str) -> dict[str, Any]:
    if parse_quantity(text) is None:
        raise ValueError(f"quantities must match the regular expression: {text}")
    return {_QUANTITY: text}


def _q(value: dict[str, Any]) -> Decimal:
    parsed = parse_quantity(value.get(_QUANTITY))
    if parsed is None:
        raise ValueError("not a quantity")
    return parsed


def _q_text(amount: Decimal) -> dict[str, Any]:
    normal = amount.normalize()
    return {_QUANTITY: str(int(normal)) if normal == normal.to_integral_value() else format(normal, "f")}


def _as_integer(value: dict[str, Any]) -> int:
    amount = _q(value)
    if amount != amount.to_integral_value() or abs(amount) >= 2**63:
        raise ValueError("cannot convert value to integer")
    return int(amount)


def _compare(a: dict[str, Any], b: dict[str, Any]) -> int:
    x, y = _q(a), _q(b)
    return (x > y) - (x < y)


def _authz_step(key: str) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    def step(builder: dict[str, Any], value: str) -> dict[str, Any]:
        return {**builder, key: value}
    return step


def _authz_service_account(builder: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    return {**builder, "group": "", "resource": "serviceaccounts", "namespace": namespace, "name": name}


def _authz_check(builder: dict[str, Any], verb: str) -> dict[str, Any]:
    decide = _authorize.get()
    if decide is None:
        return {_AUTHZ: "decision", "allowed": False, "reason": "no authorizer", "error": ""}
    allowed, reason = decide({**builder, "verb": verb})
    return {_AUTHZ: "decision", "allowed": allowed, "reason": reason, "error": ""}


def _decl(name: str, overload: str, returns: Any, params: list[Any], impl: Callable[..., Any],
          member: bool = True) -> Any:
    return cel.FunctionDecl(name, [cel.Overload(overload, returns, params, is_member=member, impl=impl)])


def _library() -> list[Any]:
    decls = [
        _decl("isSorted", "list_is_sorted", _BOOL, [_LIST], _is_sorted),
        _decl("sum", "list_sum", _DYN, [_LIST], _sum),
        _decl("min", "list_min", _DYN, [_LIST], _min),
        _decl("max", "list_max", _DYN, [_LIST], _max),
        _decl("find", "string_find", _STR, [_STR, _STR], _find),
        _decl("findAll", "string_find_all", cel.Type.List(_STR), [_STR, _STR], _find_all),
        _decl("quantity", "quantity_string", _MAP, [_STR], _quantity, member=False),
        _decl("isQuantity", "is_quantity_string", _BOOL, [_STR], lambda s: parse_quantity(s) is not None,
              member=False),
        _decl("asInteger", "quantity_as_integer", _INT, [_MAP], _as_integer),
        _decl("isInteger", "quantity_is_integer", _BOOL, [_MAP],
              lambda q: _q(q) == _q(q).to_integral_value() and abs(_q(q)) < 2**63),
        _decl("asApproximateFloat", "quantity_as_float", cel.Type.DOUBLE, [_MAP], lambda q: float(_q(q))),
        _decl("sign", "quantity_sign", _INT, [_MAP], lambda q: (_q(q) > 0) - (_q(q) < 0)),
        _decl("add", "quantity_add", _MAP, [_MAP, _MAP], lambda a, b: _q_text(_q(a) + _q(b))),
        _decl("sub", "quantity_sub", _MAP, [_MAP, _MAP], lambda a, b: _q_text(_q(a) - _q(b))),
        _decl("compareTo", "quantity_compare", _INT, [_MAP, _MAP], _compare),
        _decl("isGreaterThan", "quantity_greater", _BOOL, [_MAP, _MAP], lambda a, b: _compare(a, b) > 0),
        _decl("isLessThan", "quantity_less", _BOOL, [_MAP, _MAP], lambda a, b: _compare(a, b) < 0),
        _decl("serviceAccount", "authz_service_account", _MAP, [_MAP, _STR, _STR], _authz_service_account),
        _decl("check", "authz_check", _MAP, [_MAP, _STR], _authz_check),
        _decl("allowed", "authz_allowed", _BOOL, [_MAP], lambda d: bool(d.get("allowed"))),
        _decl("reason", "authz_reason", _STR, [_MAP], lambda d: str(d.get("reason", ""))),
        _decl("errored", "authz_errored", _BOOL, [_MAP], lambda d: bool(d.get("error"))),
        _decl("error", "authz_error", _STR, [_MAP], lambda d: str(d.get("error", ""))),
    ]
    for key in ("group", "resource", "subresource", "namespace", "name", "path"):
        decls.append(_decl(key, f"authz_{key}", _MAP, [_MAP, _STR], _authz_step(key)))
    return decls


def _list_index_extension() -> Any:
    # The strings library declares `indexOf`/`lastIndexOf` on strings: the list overloads
    # join them as an extension (a second declaration of the function is refused).
    return cel.CelExtension("kybernetes_lists", [
        _decl("indexOf", "list_index_of", _INT, [_LIST, _DYN], _index_of),
        _decl("lastIndexOf", "list_last_index_of", _INT, [_LIST, _DYN], _last_index_of)])


_ENVS: dict[tuple[str, ...], Any] = {}


def new_env(variables: Iterable[str]) -> Any:
    """A CEL environment declaring `variables` (each dyn; `authorizer` a builder map).
    Environments are shared per variable set: building one costs milliseconds."""
    names = tuple(variables)
    env = _ENVS.get(names)
    if env is None:
        declared = {name: (_MAP if name == "authorizer" else _DYN) for name in names}
        extensions = [ext_strings.ExtStrings(), ext_optional.ExtOptional(), ext_bindings.ExtBindings(),
                      _list_index_extension()]
        env = cel.NewEnv(variables=declared, extensions=extensions, functions=_library())
        _ENVS[names] = env
    return env


# -- compile and evaluate --------------------------------------------------------------------

def _status_text(message: str) -> str:
    """The runtime's status text without its status-code wrapping."""
    text = message.strip()
    text = re.sub(r"^[A-Z_]+: ", "", text, count=1)
    text = re.sub(r"\s*\[[A-Z_]+\]$", "", text)
    return text


def compile_expression(env: Any, text: str) -> Program:
    """Compile `text`, or raise CelError worded as kube-apiserver's
    ("compilation failed: ERROR: <input>:1:5: ...")."""
    if not isinstance(text, str):
        raise CelError("compilation failed: expression must be a string")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise CelError(f"compilation failed: expression is too long: {len(text)} characters, "
                       f"limit {MAX_EXPRESSION_LENGTH}")
    try:
        expr = env.compile(text)
    except RuntimeError as e:
        raise CelError("compilation failed: " + _status_text(str(e))) from None
    return Program(text, expr, expr.return_type().name().lower())


_RUNTIME_WORDING = [
    (re.compile(r'^Key not found in map : "?(.*?)"?$'), r"no such key: \1"),
    (re.compile(r"^divide by zero$"), "division by zero"),
    (re.compile(r"^modulus by zero$"), "modulus by zero"),
    (re.compile(r"^No matching overloads found : (.*)$"), r"no such overload: \1"),
]


def runtime_error_text(message: str) -> str:
    """The runtime's error as cel-go (and so kube-apiserver) words the common ones."""
    text = _status_text(message)
    for pattern, replacement in _RUNTIME_WORDING:
        if pattern.match(text):
            return pattern.sub(replacement, text)
    return text


class Bindings:
    """Variable bindings converted once, shared by every expression of one request."""

    __slots__ = ("env", "data", "act", "widened")

    def __init__(self, env: Any, data: dict[str, Any]) -> None:
        self.env = env
        self.data = data
        self.act = env.Activation(data)
        self.widened = False

    def widen(self) -> bool:
        """Rebind with integers beyond int64 as doubles; False when already done."""
        if self.widened:
            return False
        self.data = to_cel(self.data)
        self.act = self.env.Activation(self.data)
        self.widened = True
        return True


def activation(env: Any, data: dict[str, Any]) -> Bindings:
    try:
        return Bindings(env, data)
    except (RuntimeError, TypeError, ValueError, OverflowError) as e:
        raise CelError(runtime_error_text(str(e))) from None


def _eval_once(program: Program, data: Any) -> Any:
    try:
        result = program.expr.eval(data.act) if isinstance(data, Bindings) else program.expr.eval(data=data)
    except (RuntimeError, TypeError, ValueError, OverflowError) as e:
        text = str(e)
        if "budget exceeded" in text:
            raise CostExceeded("operation cancelled: actual cost limit exceeded") from None
        raise CelError(runtime_error_text(text)) from None
    if result.type() == cel.Type.ERROR:
        raise CelError(runtime_error_text(str(result.value())))
    return result.plain_value()


def evaluate(program: Program, data: Any) -> Any:
    """Evaluate to a plain Python value. `data` is a dict of variables or `activation()`'s
    bindings. Raises CelError (CostExceeded when the budget ran out)."""
    try:
        return _eval_once(program, data)
    except CostExceeded:
        raise
    except CelError as e:
        # Rare: a JSON integer beyond int64 (the runtime refuses it where it is read).
        if "out of range for" not in str(e):
            raise
        if isinstance(data, Bindings):
            if not data.widen():
                raise
            return _eval_once(program, data)
        return _eval_once(program, to_cel(data))


@contextlib.contextmanager
def authorizing(decide: AuthorizeFn) -> Iterator[None]:
    """Within the block, `authorizer...check(verb)` asks `decide` (synchronous: an
    evaluation never yields to the event loop, so the binding cannot leak to another
    request)."""
    token = _authorize.set(decide)
    try:
        yield
    finally:
        _authorize.reset(token)


def authorizer_value() -> dict[str, Any]:
    """The `authorizer` variable: an empty request builder."""
    return {_AUTHZ: "builder"}


def is_quantity(value: Any) -> bool:
    return isinstance(value, dict) and _QUANTITY in value


def to_cel(value: Any) -> Any:
    """A JSON value as the runtime takes it. Integers beyond int64 become doubles (CEL has
    no bigger integer; the JSON number they came from was no more exact)."""
    if isinstance(value, dict):
        return {k: to_cel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_cel(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
        return float(value)
    return value
