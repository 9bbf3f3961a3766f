"""The pitfall checker's rules: a small AST model of Durable Object code, and one rule per mistake.

Each rule is a generator ``rule(model) -> Iterator[Finding]`` whose docstring states the rule
precisely enough to predict what it flags. The analysis is syntactic and stays inside one module:

- names resolve through the module's imports (``import asyncio as aio``, ``from asyncio import
  sleep as nap``), so aliases are seen through;
- a class is a *Durable Object* when a base is spelled ``…DurableObject`` (or is a Durable Object
  class of the module), a *Worker* when a base is spelled ``…WorkerEntrypoint``;
- code "a Durable Object runs" is its classes' methods plus the module's helper functions and
  classes they name (transitively: ``helper()``, ``Helper(...)``, mixin bases);
- inside a function, simple ``name = expr`` assignments are aliases
  (``storage = self.ctx.storage``),
  and a body is read top to bottom with branches and loops flattened in source order.

``checks.py`` holds the public entry points; this module holds the rules and their vocabulary.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

Function = ast.FunctionDef | ast.AsyncFunctionDef
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)

#: code -> the lesson notebook (``notebooks/<lesson>.ipynb``) that teaches the mistake.
LESSONS: dict[str, str] = {
    "kv-for-state": "02-why-not-kv",
    "new-id-per-request": "03-one-instance-per-id",
    "external-coordination": "04-no-external-locks",
    "await-between-read-and-write": "05-input-gates",
    "storage-read-per-request": "07-initialization",
    "timer-instead-of-alarm": "08-alarms-vs-timers",
    "oversized-value": "09-storage-limits",
    "missing-binding": "11-workers-and-wrangler",
}
CODES: tuple[str, ...] = tuple(LESSONS)


@dataclass(frozen=True)
class Finding:
    """One mistake found in the code: a stable ``code``, the 1-based ``line``, what is wrong
    (``message``), what to do instead (``fix``) and the lesson that teaches it."""

    code: str
    line: int
    message: str
    fix: str
    lesson: str

    def __str__(self) -> str:
        return (
            f"line {self.line}: {self.code}: {self.message}\n"
            f"    fix: {self.fix}\n    lesson: notebooks/{self.lesson}.ipynb"
        )


def _finding(code: str, node: ast.AST, message: str, fix: str) -> Finding:
    return Finding(code, getattr(node, "lineno", 1), message, fix, LESSONS[code])


# ---- syntax helpers ----------------------------------------------------------------------------


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of names and attributes; None when the chain holds anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def walk_local(root: ast.AST) -> Iterator[ast.AST]:
    """Pre-order, source-ordered walk that does not enter nested functions, lambdas or classes
    (they are scopes of their own); a function root yields its body."""
    start = root.body if isinstance(root, _FUNCS) else [root]
    stack: list[ast.AST] = list(reversed(start))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _SCOPES):
            stack.extend(reversed(list(ast.iter_child_nodes(node))))


def calls_in(root: ast.AST) -> Iterator[ast.Call]:
    return (n for n in walk_local(root) if isinstance(n, ast.Call))


def const_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def const_number(node: ast.AST | None) -> float | None:
    """The value of a numeric constant expression (``60``, ``5 * 60 * 1000``, ``-1``), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return None if isinstance(node.value, bool) else float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = const_number(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.BinOp):
        return _fold(node)
    return None


def _fold(node: ast.BinOp) -> float | None:
    left, right = const_number(node.left), const_number(node.right)
    if left is None or right is None:
        return None
    ops: dict[type, Callable[[float, float], float]] = {
        ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b, ast.Pow: lambda a, b: a**b,
        ast.Div: lambda a, b: a / b if b else 0.0, ast.FloorDiv: lambda a, b: a // b if b else 0.0,
    }
    op = ops.get(type(node.op))
    return None if op is None else op(left, right)


def is_self_attr(node: ast.AST) -> str | None:
    """``F`` when the node is ``self.F``."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr if node.value.id == "self" else None
    return None


def target_names(target: ast.AST) -> list[str]:
    """Local names bound by an assignment target (tuples and starred unpacked)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in target_names(elt)]
    if isinstance(target, ast.Starred):
        return target_names(target.value)
    return []


def field_root(target: ast.AST) -> str | None:
    """``F`` for an assignment target rooted at a field: ``self.F``, ``self.F[k]``, ``self.F.x``."""
    while isinstance(target, (ast.Subscript, ast.Attribute)):
        name = is_self_attr(target)
        if name is not None:
            return name
        target = target.value
    return None


def local_aliases(fn: Function) -> dict[str, ast.expr]:
    """``name -> expr`` for ``name = <dotted expr>`` in the function
    (``storage = self.ctx.storage``)."""
    aliases: dict[str, ast.expr] = {}
    for node in walk_local(fn):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and dotted(node.value) is not None:
                aliases[target.id] = node.value
    return aliases


def expand(node: ast.AST, aliases: dict[str, ast.expr]) -> ast.AST:
    """Replace a leading alias by what it names (up to three levels)."""
    for _ in range(3):
        root = node
        while isinstance(root, ast.Attribute):
            root = root.value
        if not (isinstance(root, ast.Name) and root.id in aliases):
            return node
        text = dotted(node) or ""
        base = dotted(aliases[root.id]) or root.id
        node = ast.parse(base + text[len(root.id):], mode="eval").body
    return node


# ---- the model ---------------------------------------------------------------------------------


@dataclass
class ClassInfo:
    """A class of the module: ``kind`` is ``"do"``, ``"worker"`` or ``"other"``; ``fields`` are
    the names assigned as ``self.<name>`` anywhere in it."""

    node: ast.ClassDef
    kind: str
    methods: dict[str, Function]
    fields: set[str]


@dataclass
class Model:
    """What the rules know about one module."""

    tree: ast.Module
    imports: dict[str, str]
    classes: dict[str, ClassInfo]
    functions: dict[str, Function]
    parents: dict[ast.AST, ast.AST]
    declared: frozenset[str] | None
    constants: dict[str, str] = dataclasses.field(default_factory=dict)
    do_scope: set[ast.AST] = dataclasses.field(default_factory=set)
    worker_scope: set[ast.AST] = dataclasses.field(default_factory=set)

    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        while node in self.parents:
            node = self.parents[node]
            yield node

    def function_of(self, node: ast.AST) -> Function | None:
        return next((a for a in self.ancestors(node) if isinstance(a, _FUNCS)), None)

    def class_of(self, node: ast.AST) -> ClassInfo | None:
        owner = next((a for a in self.ancestors(node) if isinstance(a, ast.ClassDef)), None)
        return None if owner is None else self.classes.get(owner.name)

    def top_of(self, node: ast.AST) -> ast.AST:
        """The module-level statement that contains the node."""
        for ancestor in self.ancestors(node):
            if self.parents.get(ancestor) is self.tree:
                return ancestor
        return node

    def key_text(self, node: ast.AST) -> str | None:
        """A storage key's text: a string literal or a module-level string constant's value."""
        if isinstance(node, ast.Name):
            return self.constants.get(node.id)
        return const_str(node)

    def qualified(self, node: ast.AST) -> str | None:
        """The dotted name with its first part resolved through the imports."""
        text = dotted(node)
        if text is None:
            return None
        head, _, rest = text.partition(".")
        resolved = self.imports.get(head, head)
        return f"{resolved}.{rest}" if rest else resolved

    def in_do(self, node: ast.AST) -> bool:
        return self.top_of(node) in self.do_scope

    def in_worker(self, node: ast.AST) -> bool:
        return self.top_of(node) in self.worker_scope

    def all_functions(self) -> Iterator[Function]:
        return (n for n in ast.walk(self.tree) if isinstance(n, _FUNCS))

    def classes_of_kind(self, kind: str) -> list[ClassInfo]:
        return [c for c in self.classes.values() if c.kind == kind]

    @property
    def is_do_code(self) -> bool:
        """Durable Object code: defines a DO or Worker class, or imports dolab/workers/js."""
        sources = {q.split(".")[0] for q in self.imports.values()}
        return bool(self.do_scope or self.worker_scope or sources & {"dolab", "workers", "js"})


def build_model(tree: ast.Module, declared: Iterable[str] | None) -> Model:
    parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    model = Model(tree, _imports(tree), {}, {}, parents,
                  None if declared is None else frozenset(declared))
    model.constants = _string_constants(tree)
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            model.classes[stmt.name] = _class_info(model, stmt)
        elif isinstance(stmt, _FUNCS):
            model.functions[stmt.name] = stmt
    model.do_scope = _reachable(model, [c.node for c in model.classes_of_kind("do")])
    worker_roots: list[ast.AST] = [c.node for c in model.classes_of_kind("worker")]
    worker_roots += [f for name, f in model.functions.items() if name == "on_fetch"]
    model.worker_scope = _reachable(model, worker_roots)
    return model


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` assigned once (storage keys named by a constant)."""
    found: dict[str, str] = {}
    assigned: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            for name in target_names(stmt.targets[0]):
                text = const_str(stmt.value)
                if name in assigned or text is None:
                    found.pop(name, None)
                elif text is not None:
                    found[name] = text
                assigned.add(name)
    return found


def _imports(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                names[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module or ''}.{alias.name}"
    return names


def _class_info(model: Model, node: ast.ClassDef) -> ClassInfo:
    methods = {s.name: s for s in node.body if isinstance(s, _FUNCS)}
    fields = {
        name
        for n in ast.walk(node)
        if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign))
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        for name in [is_self_attr(t)]
        if name is not None
    }
    return ClassInfo(node, _class_kind(model, node), methods, fields - set(methods))


def _class_kind(model: Model, node: ast.ClassDef) -> str:
    for base in node.bases:
        base = base.value if isinstance(base, ast.Subscript) else base
        name = model.qualified(base) or ""
        if name.endswith("DurableObject"):
            return "do"
        if name.endswith("WorkerEntrypoint"):
            return "worker"
        known = model.classes.get(name)
        if known is not None and known.kind != "other":
            return known.kind
    return "other"


def _reachable(model: Model, roots: list[ast.AST]) -> set[ast.AST]:
    """The roots plus every module-level function or class they name, transitively."""
    top: dict[str, ast.AST] = {**model.functions, **{n: c.node for n, c in model.classes.items()}}
    seen: set[ast.AST] = set()
    todo = list(roots)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo += [top[n.id] for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in top]
    return seen


# ---- platform vocabulary -----------------------------------------------------------------------

_STORAGE_RE = re.compile(r"(?:^|\.)(?:storage|txn|tx)(?:\.kv)?$")
_SQL_RE = re.compile(r"(?:^|\.)(?:storage\.sql|sql)$")
_NAMESPACE_METHODS = {"getByName", "idFromName", "newUniqueId", "idFromString", "jurisdiction"}
_CRITICAL = frozenset({"blockConcurrencyWhile", "transaction", "transactionSync"})
_SQL_READ = re.compile(r"^\s*(?:SELECT|WITH)\b", re.I)
_SQL_TABLE = re.compile(
    r"\b(?:FROM|INTO|UPDATE|JOIN)\s+[\"`\[]?(\w+)", re.I
)
_SQL_WRITE = re.compile(r"^\s*(?:INSERT|UPDATE|DELETE|REPLACE)\b", re.I)


def storage_op(call: ast.Call, aliases: dict[str, ast.expr]) -> str | None:
    """The method name when the call is on Durable Object storage (``self.ctx.storage.get``,
    ``storage.put`` via an alias, ``txn.get``, ``storage.kv.get``)."""
    if not isinstance(call.func, ast.Attribute):
        return None
    receiver = dotted(expand(call.func.value, aliases))
    return call.func.attr if receiver and _STORAGE_RE.search(receiver) else None


def sql_statement(call: ast.Call, aliases: dict[str, ast.expr]) -> str | None:
    """The query text of ``<storage>.sql.exec("…")`` (the call may be chained: ``.one()``)."""
    while isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Call):
        if call.func.attr == "exec":
            break
        call = call.func.value
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "exec"):
        return None
    receiver = dotted(expand(call.func.value, aliases))
    if not (receiver and _SQL_RE.search(receiver)):
        return None
    return const_str(call.args[0]) if call.args else None


def sql_table(query: str) -> str | None:
    match = _SQL_TABLE.search(query)
    return match.group(1).lower() if match else None


def env_binding(node: ast.AST, aliases: dict[str, ast.expr]) -> str | None:
    """``X`` when the node is ``env.X`` / ``self.env.X`` (directly or through an alias)."""
    node = expand(node, aliases)
    if not isinstance(node, ast.Attribute):
        return None
    owner = dotted(node.value)
    if owner is not None and (owner == "env" or owner.endswith(".env")):
        return node.attr
    return None


def do_namespaces(model: Model) -> set[str]:
    """Bindings used with a Durable Object namespace method anywhere in the module."""
    found: set[str] = set()
    for fn in model.all_functions():
        aliases = local_aliases(fn)
        for call in calls_in(fn):
            if isinstance(call.func, ast.Attribute) and call.func.attr in _NAMESPACE_METHODS:
                binding = env_binding(call.func.value, aliases)
                if binding:
                    found.add(binding)
    return found


def critical_functions(model: Model, methods: frozenset[str] = _CRITICAL) -> set[ast.AST]:
    """Functions passed to ``blockConcurrencyWhile``, ``transaction`` or ``transactionSync``
    (by ``self.method``, by name, or called from a lambda): they run with the input gate closed."""
    found: set[ast.AST] = set()
    for call in (n for n in ast.walk(model.tree) if isinstance(n, ast.Call)):
        if isinstance(call.func, ast.Attribute) and call.func.attr in methods and call.args:
            found |= set(_callee_functions(model, call, call.args[0]))
    return found


def _callee_functions(model: Model, site: ast.AST, arg: ast.AST) -> Iterator[ast.AST]:
    """Functions that ``arg`` (a function reference, a call, or a lambda) names at ``site``."""
    if isinstance(arg, ast.Lambda):
        for call in (n for n in ast.walk(arg.body) if isinstance(n, ast.Call)):
            yield from _callee_functions(model, site, call.func)
        return
    if isinstance(arg, ast.Call):
        arg = arg.func
    method = is_self_attr(arg)
    cls = model.class_of(site)
    if method and cls and method in cls.methods:
        yield cls.methods[method]
    elif isinstance(arg, ast.Name):
        yield from _named_function(model, site, arg.id)


def _named_function(model: Model, site: ast.AST, name: str) -> Iterator[ast.AST]:
    fn = model.function_of(site)
    nested = [n for n in walk_local(fn) if isinstance(n, _FUNCS) and n.name == name] if fn else []
    yield from nested or ([model.functions[name]] if name in model.functions else [])


# ---- rule: await-between-read-and-write (and the data-flow it shares with kv-for-state) -------


@dataclass(frozen=True)
class Target:
    """What a read comes from or a write goes to: a storage ``key`` (by the key expression),
    a ``field`` of ``self``, a SQL ``table``, or a Workers ``kv`` binding."""

    kind: str
    ident: str
    label: str
    name: str | None = None  # a constant key's text or a field's name, to pair key "n" with self.n

    def matches(self, other: Target) -> bool:
        if (self.kind, self.ident) == (other.kind, other.ident):
            return True
        pair = {self.kind, other.kind} == {"key", "field"}
        return pair and bool(self.name) and (self.name or "").lstrip("_") == (
            other.name or "").lstrip("_")


@dataclass
class Taint:
    """A local holds a value read from ``origin`` at ``line``; ``gate`` is the first await since
    then that let other events run."""

    origin: Target
    line: int
    gate: ast.Await | None = None


class Flow:
    """Linear data flow over one function body: which locals hold values read from which
    targets, and which writes consume them. Subclasses say what a read, a write and a
    gate-opening await are."""

    def __init__(self, model: Model, fn: Function) -> None:
        self.model, self.fn = model, fn
        self.cls = model.class_of(fn)
        self.aliases = local_aliases(fn)
        self.taints: dict[str, list[Taint]] = {}
        self.hits: list[tuple[ast.AST, str, Taint, Target]] = []

    # hooks
    def read(self, node: ast.AST) -> Target | None:
        return None

    def call_writes(self, call: ast.Call) -> list[tuple[Target, list[ast.expr]]]:
        return []

    def target_write(self, target: ast.AST) -> Target | None:
        return None

    def opens(self, node: ast.Await) -> bool:
        return False

    def relevant(self, taint: Taint) -> bool:
        return True

    def augmented(self, stmt: ast.AugAssign) -> None:
        return None

    # engine
    def run(self) -> Flow:
        self.block(self.fn.body)
        return self

    def block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.stmt(stmt)

    def stmt(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, _SCOPES):
            return
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            self.assign(stmt)
        elif isinstance(stmt, ast.AugAssign):
            self.expr(stmt.value)
            self.augmented(stmt)
            self.write_target(stmt.target, stmt.value, stmt)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            self.expr(stmt.iter)
            self.bind(stmt.target, stmt.iter)
            self.block(stmt.body)
            self.block(stmt.orelse)
        else:
            self.compound(stmt)

    def compound(self, stmt: ast.stmt) -> None:
        """Header expressions, then nested bodies, in field order (if/while/with/try/match)."""
        for _, value in ast.iter_fields(stmt):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, ast.stmt):
                    self.stmt(item)
                elif isinstance(item, ast.expr):
                    self.expr(item)
                elif isinstance(item, ast.withitem):
                    self.expr(item.context_expr)
                elif isinstance(item, (ast.ExceptHandler, ast.match_case)):
                    self.block(item.body)

    def assign(self, stmt: ast.Assign | ast.AnnAssign) -> None:
        if stmt.value is None:
            return
        self.expr(stmt.value)
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for target in targets:
            self.write_target(target, stmt.value, stmt)
        for target in targets:
            self.bind(target, stmt.value)

    def expr(self, expr: ast.AST) -> None:
        nodes = list(walk_local(expr))
        for node in nodes:
            if isinstance(node, ast.Await) and self.opens(node):
                self.open_gate(node)
        for node in nodes:
            if isinstance(node, ast.Call):
                for target, values in self.call_writes(node):
                    self.check(node, target, values)

    def open_gate(self, node: ast.Await) -> None:
        for taints in self.taints.values():
            for taint in taints:
                taint.gate = taint.gate or node

    def bind(self, target: ast.AST, value: ast.AST) -> None:
        line = getattr(value, "lineno", 0)
        origins: list[Taint] = []
        for node in self.value_nodes(value):
            read = self.read(node)
            if read is not None:
                origins.append(Taint(read, line))
            elif isinstance(node, ast.Name):
                origins += [dataclasses.replace(t) for t in self.taints.get(node.id, [])]
        for name in target_names(target):
            self.taints[name] = list(origins)

    def value_nodes(self, value: ast.AST) -> Iterator[ast.AST]:
        """The nodes a value is computed from; what a gate-opening await returns comes from
        outside the object, so its subtree (``await self.conn.send(x)``) carries no taint."""
        stack: list[ast.AST] = [value]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Await) and self.opens(node):
                continue
            yield node
            if not isinstance(node, _SCOPES):
                stack.extend(reversed(list(ast.iter_child_nodes(node))))

    def write_target(self, target: ast.AST, value: ast.expr, stmt: ast.stmt) -> None:
        written = self.target_write(target)
        if written is not None:
            self.check(stmt, written, [value])

    def check(self, node: ast.AST, target: Target, values: list[ast.expr]) -> None:
        for value in values:
            for name in (n for n in walk_local(value) if isinstance(n, ast.Name)):
                for taint in self.taints.get(name.id, []):
                    if self.relevant(taint) and taint.origin.matches(target):
                        self.hits.append((node, name.id, taint, target))
                        return


class StaleWrite(Flow):
    """Reads are storage ``get``, SQL ``SELECT`` and field reads; writes are storage ``put``,
    SQL ``INSERT/UPDATE/DELETE`` and field assignments; a taint matters once a gate-opening
    await happened after its read."""

    def read(self, node: ast.AST) -> Target | None:
        if isinstance(node, ast.Call):
            if storage_op(node, self.aliases) == "get" and node.args:
                return _key_target(self.model, node.args[0])
            query = sql_statement(node, self.aliases)
            if query and _SQL_READ.match(query) and sql_table(query):
                table = sql_table(query) or ""
                return Target("table", table, f"table {table}")
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            field = is_self_attr(node)
            if field and self.cls and field in self.cls.fields:
                return Target("field", field, f"self.{field}", field)
        return None

    def call_writes(self, call: ast.Call) -> list[tuple[Target, list[ast.expr]]]:
        if storage_op(call, self.aliases) == "put":
            return [(_key_target(self.model, k), [v]) for k, v in put_pairs(call)]
        query = sql_statement(call, self.aliases)
        if query and _SQL_WRITE.match(query) and sql_table(query):
            table = sql_table(query) or ""
            return [(Target("table", table, f"table {table}"), list(call.args[1:]))]
        return []

    def target_write(self, target: ast.AST) -> Target | None:
        field = field_root(target)
        return Target("field", field, f"self.{field}", field) if field else None

    def relevant(self, taint: Taint) -> bool:
        return taint.gate is not None

    def opens(self, node: ast.Await) -> bool:
        return opens_gate(self.model, self.cls, node.value, self.aliases, set())

    def augmented(self, stmt: ast.AugAssign) -> None:
        """``self.f += await other()`` reads ``self.f`` before the await, writes after it."""
        field = field_root(stmt.target)
        gates = [n for n in walk_local(stmt.value) if isinstance(n, ast.Await) and self.opens(n)]
        if field and gates:
            origin = Target("field", field, f"self.{field}", field)
            self.hits.append((stmt, f"self.{field}", Taint(origin, stmt.lineno, gates[0]), origin))


def _key_target(model: Model, key: ast.AST) -> Target:
    text = model.key_text(key)
    label = repr(text) if text is not None else f"key {ast.unparse(key)}"
    return Target("key", ast.dump(key), label, text)


def put_pairs(call: ast.Call) -> list[tuple[ast.expr, ast.expr]]:
    """``(key, value)`` pairs written by ``put(key, value)`` or ``put({key: value, …})``."""
    if len(call.args) >= 2:
        return [(call.args[0], call.args[1])]
    if call.args and isinstance(call.args[0], ast.Dict):
        entries = call.args[0]
        return [(k, v) for k, v in zip(entries.keys, entries.values, strict=True) if k is not None]
    return []


_GATHER = {"asyncio.gather", "asyncio.wait", "asyncio.shield"}


def opens_gate(model: Model, cls: ClassInfo | None, value: ast.AST,
               aliases: dict[str, ast.expr], seen: set[str]) -> bool:
    """Whether awaiting ``value`` lets other events into the object. Storage calls,
    ``blockConcurrencyWhile`` and ``gather`` of those keep the input gate closed; a call of one of
    the class's own methods opens it only if that method awaits something that does; anything
    else (``fetch``, stub calls, ``scheduler.wait``, ``asyncio.sleep``, unknown awaitables)
    opens it."""
    if not isinstance(value, ast.Call):
        return True
    if storage_op(value, aliases) or sql_statement(value, aliases) is not None:
        return False
    if isinstance(value.func, ast.Attribute) and value.func.attr in _CRITICAL:
        return False
    if model.qualified(value.func) in _GATHER:
        return any(opens_gate(model, cls, a, aliases, seen) for a in value.args)
    method = is_self_attr(value.func)
    if cls is not None and method in cls.methods and method is not None:
        return _method_opens(model, cls, method, seen)
    return True


def _method_opens(model: Model, cls: ClassInfo, name: str, seen: set[str]) -> bool:
    if name in seen:
        return False
    seen.add(name)
    fn = cls.methods[name]
    aliases = local_aliases(fn)
    for node in walk_local(fn):
        if isinstance(node, (ast.AsyncFor, ast.AsyncWith)):
            return True
        if isinstance(node, ast.Await) and opens_gate(model, cls, node.value, aliases, seen):
            return True
    return False


def await_between_read_and_write(model: Model) -> Iterator[Finding]:
    """``await-between-read-and-write``: in an async function of Durable Object code (not a
    Worker's, not one passed to ``blockConcurrencyWhile``/``transaction``), a local is assigned
    from a storage ``get``, a SQL ``SELECT`` or a field (``v = self.count``); later an ``await``
    that is not storage lets other events in (``scheduler.wait``, ``asyncio.sleep``, ``fetch``,
    a stub call, a helper method that awaits one of those); later still a write to the same
    target uses that local: ``storage.put`` of the same key expression, an SQL write to the same
    table, an assignment to the same field (a constant key ``"n"`` pairs with ``self.n``).
    ``self.f += await other()`` is the one-line form. Values flow through expressions and
    calls (``n = int(v) + 1``), but what a gate-opening await returns counts as fresh. Reported
    at the write."""
    critical = critical_functions(model)
    for fn in model.all_functions():
        cls = model.class_of(fn)
        if not isinstance(fn, ast.AsyncFunctionDef) or fn in critical:
            continue
        if cls is not None and cls.kind == "worker":
            continue
        yield from _stale_findings(StaleWrite(model, fn).run())


def _stale_findings(flow: Flow) -> Iterator[Finding]:
    seen: set[int] = set()
    for node, local, taint, target in flow.hits:
        line = getattr(node, "lineno", 0)
        if line in seen or taint.gate is None:
            continue
        seen.add(line)
        awaited = ast.unparse(taint.gate.value)
        awaited = awaited if len(awaited) <= 60 else awaited[:57] + "..."
        held = (f"`{local} += await ...` reads {local} before the await" if local == target.label
                else f"`{local}` holds {taint.origin.label} read at line {taint.line}")
        yield _finding(
            "await-between-read-and-write", node,
            f"{held}; `await {awaited}` at line {taint.gate.lineno} lets other requests run "
            f"before this write to {target.label}, so their updates are lost (input gates only "
            "hold across storage awaits).",
            "Read, modify and write in one turn with no non-storage await between them (do the "
            "outside call before the read, or re-read after it), or run the read-modify-write "
            "inside `self.ctx.blockConcurrencyWhile(...)` or `storage.transaction(...)`.",
        )


# ---- rule: kv-for-state ------------------------------------------------------------------------


class KvReadModifyWrite(Flow):
    """Reads are ``env.X.get(...)`` on a Workers KV binding; writes are ``env.X.put(...)``."""

    def __init__(self, model: Model, fn: Function, namespaces: set[str]) -> None:
        super().__init__(model, fn)
        self.namespaces = namespaces

    def kv(self, call: ast.Call, ops: set[str]) -> str | None:
        if not (isinstance(call.func, ast.Attribute) and call.func.attr in ops):
            return None
        binding = env_binding(call.func.value, self.aliases)
        return binding if binding and binding not in self.namespaces else None

    def read(self, node: ast.AST) -> Target | None:
        binding = self.kv(node, {"get", "getWithMetadata"}) if isinstance(node, ast.Call) else None
        return Target("kv", binding, f"env.{binding}") if binding else None

    def call_writes(self, call: ast.Call) -> list[tuple[Target, list[ast.expr]]]:
        binding = self.kv(call, {"put"})
        if binding is None or len(call.args) < 2:
            return []
        return [(Target("kv", binding, f"env.{binding}"), [call.args[1]])]


_CONTAINER_CALLS = {"dict", "list", "set", "collections.defaultdict", "collections.OrderedDict",
                    "collections.Counter", "collections.deque", "defaultdict", "OrderedDict",
                    "Counter", "deque"}
_MUTATORS = {"append", "extend", "insert", "add", "update", "setdefault", "pop", "popitem",
             "remove", "discard", "clear", "appendleft", "popleft", "__setitem__"}


def _is_container(model: Model, value: ast.AST | None) -> bool:
    if isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)):
        return True
    return isinstance(value, ast.Call) and model.qualified(value.func) in _CONTAINER_CALLS


def kv_for_state(model: Model) -> Iterator[Finding]:
    """``kv-for-state``: (a) in any function, a Workers KV binding ``env.X`` (X never used with
    ``getByName/idFromName/newUniqueId/idFromString``) is read with ``get`` and the value read
    flows into a ``put`` on the same binding (read-modify-write); reported at the ``put``.
    (b) In Worker code (``WorkerEntrypoint`` methods, ``on_fetch`` and the helpers they name), a
    module-level or Worker class-level dict/list/set (a literal or ``dict()``, ``defaultdict()``…,
    whose name does not say ``cache``) is mutated, or a module global is reassigned through
    ``global``; reported at the mutation."""
    namespaces = do_namespaces(model)
    for fn in model.all_functions():
        for node, _, taint, target in KvReadModifyWrite(model, fn, namespaces).run().hits:
            yield _finding(
                "kv-for-state", node,
                f"{target.label} is used as state: the value read at line {taint.line} is modified "
                "and written back. Workers KV is eventually consistent, has no transactions and "
                "takes about one write per key per second, so concurrent requests lose updates "
                "and readers see stale values.",
                "Keep state that changes per request in a Durable Object: route to it with "
                "`self.env.NS.getByName(name)` and update it in the object (in a field, persisted "
                "with `self.ctx.storage.put`); use KV only for read-mostly data.",
            )
    yield from _worker_globals(model)


def _worker_globals(model: Model) -> Iterator[Finding]:
    containers = _containers(model, model.tree.body)
    attrs = {n for c in model.classes_of_kind("worker") for n in _containers(model, c.node.body)}
    for fn in model.all_functions():
        if not model.in_worker(fn):
            continue
        local = {n for t in walk_local(fn) if isinstance(t, ast.Name)
                 and isinstance(t.ctx, ast.Store) for n in [t.id]}
        globals_ = {n for s in walk_local(fn) if isinstance(s, ast.Global) for n in s.names}
        yield from _global_mutations(fn, set(containers) - (local - globals_), attrs, globals_)


def _containers(model: Model, body: list[ast.stmt]) -> set[str]:
    """Names bound to a mutable container in a module or class body (caches excepted)."""
    names: set[str] = set()
    for stmt in body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and _is_container(model, stmt.value):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names |= {n for t in targets for n in target_names(t) if "cache" not in n.lower()}
    return names


def _global_mutations(fn: Function, names: set[str], attrs: set[str],
                      globals_: set[str]) -> Iterator[Finding]:
    seen: set[int] = set()
    for node in walk_local(fn):
        name = _mutated_shared(node, names, attrs, globals_)
        if name is None or node.lineno in seen:  # type: ignore[attr-defined]
            continue
        seen.add(node.lineno)  # type: ignore[attr-defined]
        yield _finding(
            "kv-for-state", node,
            f"`{name}` lives on the Worker (module or class level) and is mutated per request: "
            "each isolate has its own copy, it vanishes when the isolate is recycled, and "
            "requests served elsewhere never see it.",
            "Keep the state in a Durable Object: `stub = self.env.NS.getByName(name)` and update "
            "it there (a field loaded in `blockConcurrencyWhile`, persisted with `storage.put`).",
        )


def _shared_base(node: ast.AST, names: set[str], attrs: set[str]) -> str | None:
    """The shared container a subscript/attribute chain is rooted at, if any."""
    while isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Name) and node.id in names:
        return node.id
    if isinstance(node, ast.Attribute) and node.attr in attrs:
        return node.attr
    return None


def _mutated_shared(node: ast.AST, names: set[str], attrs: set[str],
                    globals_: set[str]) -> str | None:
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id in globals_:
                return target.id
            if isinstance(target, ast.Subscript):
                base = _shared_base(target, names, attrs)
                if base:
                    return base
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
            node.func.attr in _MUTATORS):
        return _shared_base(node.func.value, names, attrs)
    return None


# ---- rule: new-id-per-request ------------------------------------------------------------------


def new_id_per_request(model: Model) -> Iterator[Finding]:
    """``new-id-per-request``: in a Worker request handler (a ``WorkerEntrypoint`` method or a
    module-level ``on_fetch``), ``X.newUniqueId()`` is used to get a stub (``X.get(id)``) and the
    id never leaves the handler: it is not turned into text (``toString()``, ``str()``, an
    f-string), returned, stored or passed anywhere but ``X.get``, and the stub's ``.id`` is not
    read. Such an object can never be reached again, so every request gets a fresh, empty
    object. Reported at ``newUniqueId``."""
    handlers = [f for c in model.classes_of_kind("worker") for f in c.methods.values()]
    handlers += [f for n, f in model.functions.items() if n == "on_fetch"]
    for fn in handlers:
        for call in calls_in(fn):
            is_new = isinstance(call.func, ast.Attribute) and call.func.attr == "newUniqueId"
            if is_new and _id_stays_inside(model, fn, call):
                yield _finding(
                    "new-id-per-request", call,
                    f"`{ast.unparse(call)}` creates a new object for this request and the id is "
                    "thrown away: the next request can never reach the same object, so its "
                    "state is always empty.",
                    "Address the entity by its name: `self.env.NS.getByName(name)` (or "
                    "`get(idFromName(name))`). Use `newUniqueId()` only when you keep "
                    "`id.toString()` (return or store it) to reach the object again.",
                )


def _id_stays_inside(model: Model, fn: Function, call: ast.Call) -> bool:
    """True when the new id is only used to get stubs whose ``.id`` is never read."""
    parent = model.parents.get(call)
    if _is_get_arg(model, call):
        return _stub_keeps_id(model, fn, parent)
    if isinstance(parent, ast.Assign) and len(parent.targets) == 1:
        names = target_names(parent.targets[0])
        if len(names) != 1:
            return False
        uses = [n for n in walk_local(fn) if isinstance(n, ast.Name) and n.id == names[0]
                and isinstance(n.ctx, ast.Load)]
        gets = [n for n in uses if _is_get_arg(model, n)]
        if not uses or len(gets) != len(uses):
            return False
        return all(_stub_keeps_id(model, fn, model.parents.get(g)) for g in gets)
    return False


def _is_get_arg(model: Model, node: ast.AST) -> bool:
    parent = model.parents.get(node)
    return (isinstance(parent, ast.Call) and isinstance(parent.func, ast.Attribute)
            and parent.func.attr == "get" and bool(parent.args) and parent.args[0] is node)


def _stub_keeps_id(model: Model, fn: Function, get_call: ast.AST | None) -> bool:
    """The stub made by ``get_call`` does not expose its id (``stub.id``)."""
    parent = model.parents.get(get_call) if get_call else None
    if isinstance(parent, ast.Attribute):
        return parent.attr != "id"
    if isinstance(parent, ast.Assign) and len(parent.targets) == 1:
        names = set(target_names(parent.targets[0]))
        return not any(isinstance(n, ast.Attribute) and n.attr == "id"
                       and isinstance(n.value, ast.Name) and n.value.id in names
                       for n in walk_local(fn))
    return not isinstance(parent, (ast.Return, ast.Dict, ast.List))


# ---- rule: external-coordination ---------------------------------------------------------------

_COORD_MODULES = {"redis", "aioredis", "redis_lock", "pottery", "psycopg", "psycopg2",
                  "psycopg_pool", "asyncpg", "aiopg", "pymysql", "aiomysql", "MySQLdb",
                  "filelock", "portalocker", "kazoo", "etcd3", "sherlock"}
_LOCKS = {"threading.Lock", "threading.RLock", "threading.Semaphore", "threading.BoundedSemaphore",
          "threading.Condition", "asyncio.Lock", "asyncio.Semaphore", "asyncio.BoundedSemaphore",
          "asyncio.Condition", "multiprocessing.Lock", "multiprocessing.RLock", "fcntl.flock",
          "fcntl.lockf", "filelock.FileLock", "filelock.SoftFileLock", "portalocker.Lock"}
_SQL_LOCK = re.compile(r"pg_(?:try_)?advisory(?:_xact)?_lock|\bFOR\s+UPDATE\b|\bLOCK\s+TABLE\b"
                       r"|\bGET_LOCK\s*\(", re.I)
_SQL_CALLS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "fetchone", "exec",
              "query"}


def external_coordination(model: Model) -> Iterator[Finding]:
    """``external-coordination``: in Durable Object or Worker code, (a) an import of a
    coordination/external-state client (redis, aioredis, pottery, psycopg/psycopg2, asyncpg,
    aiopg, pymysql, aiomysql, filelock, portalocker, kazoo, etcd3, sherlock); (b) a lock built with
    ``threading.Lock/RLock/Semaphore/Condition``, ``asyncio.Lock/Semaphore/Condition``,
    ``multiprocessing.Lock``, ``fcntl.flock``, ``filelock.FileLock`` (aliases resolved); (c) a
    SETNX-style call: ``.set(..., nx=True)`` or ``.setnx(...)``; (d) SQL sent to an outside
    database (not ``storage.sql``) that locks: ``pg_advisory_lock``, ``FOR UPDATE``,
    ``LOCK TABLE``, ``GET_LOCK(``. One finding per line."""
    seen: set[int] = set()
    for node, what in _coordination_sites(model):
        if node.lineno not in seen:  # type: ignore[attr-defined]
            seen.add(node.lineno)  # type: ignore[attr-defined]
            yield _finding(
                "external-coordination", node,
                f"{what} coordinates from outside what a Durable Object already serializes: all "
                "requests for one id reach one instance, which runs one event at a time, and its "
                "input gate keeps storage read-modify-writes atomic.",
                "Drop the external lock/store: route every request for the entity to one object "
                "(`self.env.NS.getByName(entity)`) and keep its state in `self.ctx.storage`. For "
                "a critical section across a non-storage await, use "
                "`self.ctx.blockConcurrencyWhile(...)`.",
            )


def _coordination_sites(model: Model) -> Iterator[tuple[ast.AST, str]]:
    for node in ast.walk(model.tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            for module in modules:
                if module.split(".")[0] in _COORD_MODULES:
                    yield node, f"`import {module}`"
        elif isinstance(node, ast.Call):
            what = _coordination_call(model, node)
            if what:
                yield node, what


def _coordination_call(model: Model, call: ast.Call) -> str | None:
    name = model.qualified(call.func)
    if name in _LOCKS:
        return f"`{name}()`"
    if not isinstance(call.func, ast.Attribute):
        return None
    attr = call.func.attr
    nx = any(k.arg == "nx" and isinstance(k.value, ast.Constant) and k.value.value
             for k in call.keywords)
    if (attr == "set" and nx) or attr.lower() == "setnx":
        return f"`{ast.unparse(call.func)}(..., nx)` (a SETNX lock)"
    query = const_str(call.args[0]) if call.args else None
    if attr in _SQL_CALLS and query and _SQL_LOCK.search(query):
        receiver = dotted(call.func.value) or ""
        if not _SQL_RE.search(receiver):
            return "a locking SQL statement on an outside database"
    return None


# ---- rule: missing-binding ---------------------------------------------------------------------


def upper_snake(name: str) -> str:
    """``ChatRoom`` -> ``CHAT_ROOM`` (the lab's default binding name for a class)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).upper()


def missing_binding(model: Model) -> Iterator[Finding]:
    """``missing-binding`` (only when bindings are known: the lab's names or a wrangler file):
    ``env.X.<anything>`` or ``self.env.X.<anything>`` (directly or through a local alias of
    ``env.X``) where ``X`` is not a declared binding. One finding per name, at its first use."""
    if model.declared is None:
        return
    uses: dict[str, tuple[ast.AST, set[str]]] = {}
    for fn in model.all_functions():
        aliases = local_aliases(fn)
        for node in walk_local(fn):
            if isinstance(node, ast.Attribute):
                binding = env_binding(node.value, aliases)
                if binding and binding not in model.declared:
                    uses.setdefault(binding, (node, set()))[1].add(node.attr)
    for binding, (node, methods) in sorted(uses.items(), key=lambda i: _line(i[1][0])):
        yield _finding("missing-binding", node, _missing_message(model, binding),
                       _missing_fix(model, binding, methods))


def _line(node: ast.AST) -> int:
    return getattr(node, "lineno", 0)


def _missing_message(model: Model, binding: str) -> str:
    import difflib

    declared = sorted(model.declared or ())
    close = difflib.get_close_matches(binding, declared, n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    names = ", ".join(declared) or "none"
    return (f"`env.{binding}` is used but no binding declares it (declared: {names}); at run "
            f"time `self.env.{binding}` raises AttributeError (in JavaScript: Cannot read "
            f"properties of undefined).{hint}")


def _missing_fix(model: Model, binding: str, methods: set[str]) -> str:
    if not methods & _NAMESPACE_METHODS and methods & {"put", "list", "delete", "getWithMetadata"}:
        return (f'Declare the KV namespace: `[[kv_namespaces]]` with `binding = "{binding}"` '
                "in wrangler.toml.")
    cls = _class_for_binding(model, binding)
    return (f'Declare it: `lab.bind("{binding}", {cls})`, or in wrangler.toml '
            f'`[[durable_objects.bindings]]` with `name = "{binding}"` and '
            f'`class_name = "{cls}"` (plus a `[[migrations]]` entry for the class).')


def _class_for_binding(model: Model, binding: str) -> str:
    classes = [c.node.name for c in model.classes_of_kind("do")]
    named = [c for c in classes if upper_snake(c) == binding]
    return (named or (classes if len(classes) == 1 else ["YourClass"]))[0]


# ---- rule: storage-read-per-request ------------------------------------------------------------

_NOT_REQUESTS = {"alarm", "webSocketClose", "webSocketError", "__init__"}


def storage_read_per_request(model: Model) -> Iterator[Finding]:
    """``storage-read-per-request``: in a Durable Object class, a request handler (a public
    method other than ``alarm``/``webSocketClose``/``webSocketError``, or a private method such
    a handler calls through ``self``) calls ``storage.get`` with a constant key (a literal, a
    module-level string constant, or a list of them) that (1) the class also ``put``s — so it
    is the object's own state, not a lookup by a dynamic key such as ``f"user:{uid}"`` — and
    (2) no function passed to ``blockConcurrencyWhile`` (nor one it calls) reads with ``get``
    or loads with ``list()``; a ``get`` under an ``if`` that tests a field (lazy loading,
    ``if self.x is None:``) or inside a ``transaction`` closure is not flagged. Reported at the
    ``get``."""
    critical = critical_functions(model)
    init = critical_functions(model, frozenset({"blockConcurrencyWhile"}))
    for cls in model.classes_of_kind("do"):
        loaders = [f for f in init if isinstance(f, _FUNCS) and model.class_of(f) is cls]
        loaded = _keys_read(model, cls, loaders)
        if loaded is None:
            continue
        written = _keys_written(model, cls)
        for fn in _request_functions(model, cls, critical):
            yield from _per_request_gets(model, cls, fn, written - loaded)


def _self_callees(model: Model, cls: ClassInfo, fns: list[Function]) -> list[Function]:
    """The functions plus the class methods they call through ``self``, transitively."""
    found: list[Function] = []
    todo = list(fns)
    while todo:
        fn = todo.pop()
        if fn in found:
            continue
        found.append(fn)
        for call in calls_in(fn):
            name = is_self_attr(call.func)
            if name in cls.methods and name is not None:
                todo.append(cls.methods[name])
    return found


def _keys_read(model: Model, cls: ClassInfo, loaders: list[Function]) -> set[str] | None:
    """Constant keys the loaders read; None when they load everything with ``list()``."""
    keys: set[str] = set()
    for fn in _self_callees(model, cls, loaders):
        aliases = local_aliases(fn)
        for call in calls_in(fn):
            op = storage_op(call, aliases)
            if op == "list":
                return None
            if op == "get" and call.args:
                keys |= _const_keys(model, call.args[0])
    return keys


def _const_keys(model: Model, node: ast.AST) -> set[str]:
    if isinstance(node, (ast.List, ast.Tuple)):
        return {k for e in node.elts for k in [model.key_text(e)] if k is not None}
    key = model.key_text(node)
    return {key} if key is not None else set()


def _keys_written(model: Model, cls: ClassInfo) -> set[str]:
    keys: set[str] = set()
    for fn in cls.methods.values():
        aliases = local_aliases(fn)
        for call in calls_in(fn):
            if storage_op(call, aliases) == "put":
                keys |= {k for key, _ in put_pairs(call) for k in [model.key_text(key)] if k}
    return keys


def _request_functions(model: Model, cls: ClassInfo, critical: set[ast.AST]) -> list[Function]:
    public = [f for n, f in cls.methods.items()
              if not n.startswith("_") and n not in _NOT_REQUESTS and f not in critical]
    return [f for f in _self_callees(model, cls, public) if f not in critical]


def _per_request_gets(model: Model, cls: ClassInfo, fn: Function,
                      keys: set[str]) -> Iterator[Finding]:
    aliases = local_aliases(fn)
    for call in calls_in(fn):
        if storage_op(call, aliases) != "get" or not call.args or _lazily_loaded(model, call, fn):
            continue
        hot = sorted(_const_keys(model, call.args[0]) & keys)
        if hot:
            yield _finding(
                "storage-read-per-request", call,
                f"`{cls.node.name}.{fn.name}` reads {', '.join(map(repr, hot))} from storage on "
                "every request although the object owns that state (it writes it) and never "
                "loads it once.",
                "Load it once per instance: in `__init__` call "
                "`ctx.blockConcurrencyWhile(self.load)` with `async def load(self): self.x = "
                "await self.ctx.storage.get(key)`; serve requests from the field and write "
                "through with `self.ctx.storage.put(key, self.x)`.",
            )


def _lazily_loaded(model: Model, node: ast.AST, fn: Function) -> bool:
    for ancestor in model.ancestors(node):
        if ancestor is fn:
            return False
        if isinstance(ancestor, (ast.If, ast.IfExp)):
            test = list(ast.walk(ancestor.test))
            if any(is_self_attr(n) for n in test) or any(
                    isinstance(n, ast.Name) and n.id == "hasattr" for n in test):
                return True
    return False


# ---- rule: timer-instead-of-alarm --------------------------------------------------------------

_SLEEPS = {"asyncio.sleep", "time.sleep", "trio.sleep", "anyio.sleep", "gevent.sleep"}
_TIMERS = {"threading.Timer", "sched.scheduler"}
_BACKGROUND = {"create_task", "ensure_future", "waitUntil", "run_coroutine_threadsafe"}


def timer_instead_of_alarm(model: Model) -> Iterator[Finding]:
    """``timer-instead-of-alarm``: in code a Durable Object runs (its methods and the helpers it
    names), (a) ``threading.Timer(...)``, ``sched.scheduler(...)``, ``<loop>.call_later(...)`` or
    ``<loop>.call_at(...)``; (b) a sleep — ``asyncio.sleep``, ``time.sleep``, ``trio.sleep``,
    ``anyio.sleep`` (any alias) in seconds, or ``scheduler.wait`` in milliseconds — whose delay
    is not the constant 0, that is not in an ``except`` block (back-off before a retry), and that
    delays work: it is in a loop (periodic work), or in a function started in the background
    (``create_task``, ``ensure_future``, ``ctx.waitUntil``), or its delay is not a constant or is
    at least 1 s. A short constant pause in a request (``scheduler.wait(5)`` standing for
    latency) is not a timer; ``await-between-read-and-write`` covers what it breaks."""
    background = _background_functions(model)
    for call in (n for n in ast.walk(model.tree) if isinstance(n, ast.Call)):
        if not model.in_do(call):
            continue
        what = _timer_call(model, call, background)
        if what:
            yield _finding(
                "timer-instead-of-alarm", call,
                f"{what} delays work inside a Durable Object: an in-memory timer is lost on "
                "eviction, reset or deploy, keeps the object awake (no hibernation), and lets "
                "other events interleave at the await.",
                "Use an alarm: `await self.ctx.storage.setAlarm(Date.now() + ms)` and do the work "
                "in `async def alarm(self, alarm_info=None)`; alarms are stored, survive "
                "eviction and restarts, and are retried when the handler fails.",
            )


def _timer_call(model: Model, call: ast.Call, background: set[ast.AST]) -> str | None:
    name = model.qualified(call.func) or ""
    attr = call.func.attr if isinstance(call.func, ast.Attribute) else ""
    if name in _TIMERS or attr in {"call_later", "call_at"}:
        return f"`{ast.unparse(call.func)}(...)`"
    scale = 1.0 if name in _SLEEPS else 0.001 if name.endswith("scheduler.wait") else None
    delay_node = call.args[0] if call.args else next(
        (k.value for k in call.keywords if k.arg in {"delay", "seconds", "secs", "ms"}), None)
    if scale is None or delay_node is None:
        return None
    delay = const_number(delay_node)
    fn = model.function_of(call)
    if delay == 0 or _inside(model, call, fn, (ast.ExceptHandler,)):
        return None
    if delay is None or delay * scale >= 1 or fn in background or _inside(
            model, call, fn, (ast.For, ast.While, ast.AsyncFor)):
        return f"`{ast.unparse(call)}`"
    return None


def _inside(model: Model, node: ast.AST, fn: ast.AST | None, kinds: tuple[type, ...]) -> bool:
    for ancestor in model.ancestors(node):
        if ancestor is fn:
            return False
        if isinstance(ancestor, kinds):
            return True
    return False


def _background_functions(model: Model) -> set[ast.AST]:
    """Functions whose coroutine is started without being awaited (``create_task(self.m())``,
    ``asyncio.ensure_future(f())``, ``ctx.waitUntil(self.m())``)."""
    found: set[ast.AST] = set()
    for call in (n for n in ast.walk(model.tree) if isinstance(n, ast.Call)):
        attr = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(
            call.func, "id", "")
        if attr in _BACKGROUND and call.args and isinstance(call.args[0], ast.Call):
            found |= set(_callee_functions(model, call, call.args[0]))
    return found


# ---- rule: oversized-value ---------------------------------------------------------------------

_GROW = {"append", "extend", "insert", "appendleft", "extendleft"}
_SHRINK = {"pop", "popleft", "popitem", "remove", "discard", "clear"}
_SCALAR_USES = {"len", "sum", "min", "max", "any", "all", "bool", "hash", "id"}


def oversized_value(model: Model) -> Iterator[Finding]:
    """``oversized-value``: one storage key receives a sequence that grows with every event.
    (a) A field of a Durable Object class is grown (``self.f.append/extend/insert/appendleft``,
    ``self.f += …``, ``self.f = self.f + …`` or ``[*self.f, x]`` on a field holding a list or
    str) and never bounded (no ``pop/remove/clear/del``, no
    slicing reassignment ``self.f = self.f[-100:]``, no ``len(self.f)`` test, no reset to an
    empty literal outside ``__init__``); a ``storage.put`` writes the whole of it to one key
    (``self.f``, ``json.dumps(self.f)``, ``{"m": self.f}`` — not ``self.f[i]`` or
    ``len(self.f)``). (b) In one function, a local holding a value read with ``storage.get(k)``
    (directly or derived: ``json.loads(raw)``) is grown the same way without a bound and put back
    whole under the same key. Dicts keyed by an id (``self.users[uid] = …``) are not counted:
    their size follows a domain, not time. Reported at the ``put``."""
    loaders = critical_functions(model, frozenset({"blockConcurrencyWhile"}))
    for cls in model.classes_of_kind("do"):
        fns = [f for f in ast.walk(cls.node) if isinstance(f, _FUNCS)]
        resets = [f for f in fns if f.name != "__init__" and f not in loaders]
        grown = _grown(fns, _field_ref) - _bounded(fns, _field_ref, resets)
        yield from _whole_puts(fns, grown, _field_ref, None)
    for fn in model.all_functions():
        if model.in_do(fn):
            yield from _local_growth(fn)


def _field_ref(node: ast.AST) -> str | None:
    return is_self_attr(node)


def _name_ref(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def _collections(fns: list[Function], ref: Callable[[ast.AST], str | None]) -> set[str]:
    """References assigned a list/dict/set/str literal or constructor somewhere."""
    found: set[str] = set()
    for fn in fns:
        for node in walk_local(fn):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if _collection_value(node.value):
                    found |= {r for t in targets for r in [ref(t)] if r}
    return found


def _collection_value(value: ast.AST) -> bool:
    if isinstance(value, ast.BoolOp):
        return any(_collection_value(v) for v in value.values)
    if isinstance(value, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.JoinedStr)):
        return True
    if isinstance(value, ast.Constant):
        return isinstance(value.value, str)
    return isinstance(value, ast.Call) and getattr(value.func, "id", "") in {
        "list", "dict", "set", "defaultdict", "OrderedDict"}


def _grown(fns: list[Function], ref: Callable[[ast.AST], str | None]) -> set[str]:
    collections = _collections(fns, ref)
    grown: set[str] = set()
    for fn in fns:
        for node in walk_local(fn):
            grown |= _growth(node, ref, collections)
    return grown


def _growth(node: ast.AST, ref: Callable[[ast.AST], str | None], collections: set[str]) -> set[str]:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        name = ref(node.func.value)
        return {name} if name and node.func.attr in _GROW else set()
    if isinstance(node, ast.Assign):
        return {r for t in node.targets for r in _assign_growth(t, node.value, ref, collections)}
    if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
        name = ref(node.target)
        numeric = const_number(node.value) is not None
        return {name} if name in collections and not numeric and name else set()
    return set()


def _assign_growth(target: ast.AST, value: ast.AST, ref: Callable[[ast.AST], str | None],
                   collections: set[str]) -> set[str]:
    name = ref(target)
    concatenated = isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add)
    if name and name in collections and concatenated and any(
            ref(n) == name for n in ast.walk(value)):
        return {name}
    if name and isinstance(value, (ast.List, ast.Dict)) and any(
            isinstance(n, (ast.Starred,)) and ref(n.value) == name for n in ast.walk(value)):
        return {name}
    return set()


def _bounded(fns: list[Function], ref: Callable[[ast.AST], str | None],
             resets: list[Function]) -> set[str]:
    """References trimmed somewhere; a reset to empty counts only inside ``resets``."""
    bounded: set[str] = set()
    for fn in fns:
        for node in walk_local(fn):
            bounded |= _bound(node, ref, fn in resets)
    return bounded


def _bound(node: ast.AST, ref: Callable[[ast.AST], str | None], may_reset: bool) -> set[str]:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        name = ref(node.func.value)
        return {name} if name and node.func.attr in _SHRINK else set()
    if isinstance(node, ast.Delete):
        return {r for t in node.targets if isinstance(t, ast.Subscript)
                for r in [ref(t.value)] if r}
    if isinstance(node, ast.Compare):
        return {r for n in ast.walk(node) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "len" and n.args for r in [ref(n.args[0])] if r}
    if isinstance(node, ast.Assign):
        return {r for t in node.targets for r in [ref(t)]
                if r and _trims(node.value, ref, r, may_reset)}
    return set()


def _trims(value: ast.AST, ref: Callable[[ast.AST], str | None], name: str,
           may_reset: bool) -> bool:
    if isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Slice):
        return ref(value.value) == name
    empty = (isinstance(value, ast.List) and not value.elts) or (
        isinstance(value, ast.Dict) and not value.keys) or (
        isinstance(value, ast.Constant) and value.value == "") or (
        isinstance(value, ast.Call) and not value.args
        and getattr(value.func, "id", "") in {"list", "dict", "set"})
    return may_reset and empty


def _whole_puts(fns: list[Function], grown: set[str], ref: Callable[[ast.AST], str | None],
                key: str | None) -> Iterator[Finding]:
    """Puts that write a grown collection whole (``key``: only puts under that key dump)."""
    for fn in fns:
        aliases = local_aliases(fn)
        for call in calls_in(fn):
            if storage_op(call, aliases) != "put":
                continue
            for k, value in put_pairs(call):
                whole = _whole_refs(value, ref) & grown
                if whole and (key is None or ast.dump(k) == key):
                    yield _oversized(call, sorted(whole)[0], k)
                    break


def _whole_refs(value: ast.AST, ref: Callable[[ast.AST], str | None]) -> set[str]:
    parents = {c: p for p in ast.walk(value) for c in ast.iter_child_nodes(p)}
    found: set[str] = set()
    for node in ast.walk(value):
        name = ref(node)
        if not name:
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Subscript) and parent.value is node:
            continue
        if isinstance(parent, ast.Call) and getattr(parent.func, "id", "") in _SCALAR_USES:
            continue
        found.add(name)
    return found


def _oversized(call: ast.Call, name: str, key: ast.AST) -> Finding:
    return _finding(
        "oversized-value", call,
        f"`{name}` only grows and is written whole under one key ({ast.unparse(key)}): once it "
        "passes 128 KiB (KV-backed) or 2 MB (SQLite-backed) the put fails with RangeError, and "
        "every write re-serializes the whole collection.",
        "Store one item per key (`put(f\"msg:{id:08d}\", msg)`, read back with "
        "`list(prefix=\"msg:\")`) or one row per item in `self.ctx.storage.sql`; if you keep a "
        "list, bound it (e.g. keep the last 100).",
    )


def _local_growth(fn: Function) -> Iterator[Finding]:
    aliases = local_aliases(fn)
    keys: dict[str, str] = {}
    for node in walk_local(fn):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            names = target_names(node.targets[0])
            source = _read_key(node.value, aliases, keys)
            if len(names) == 1 and source:
                keys[names[0]] = source
    grown = _grown([fn], _name_ref) - _bounded([fn], _name_ref, [])
    for name in sorted(grown & set(keys)):
        yield from _whole_puts([fn], {name}, _name_ref, keys[name])


def _read_key(value: ast.AST, aliases: dict[str, ast.expr], keys: dict[str, str]) -> str | None:
    """The key (dump) whose stored value ``value`` holds: a ``get`` in it, or a local that does."""
    for node in walk_local(value):
        if isinstance(node, ast.Call) and storage_op(node, aliases) == "get" and node.args:
            return ast.dump(node.args[0])
        if isinstance(node, ast.Name) and node.id in keys:
            return keys[node.id]
    return None


#: The rules, in report order.
RULES: tuple[Callable[[Model], Iterator[Finding]], ...] = (
    kv_for_state,
    new_id_per_request,
    external_coordination,
    missing_binding,
    storage_read_per_request,
    timer_instead_of_alarm,
    oversized_value,
    await_between_read_and_write,
)


def run_rules(model: Model) -> list[Finding]:
    """Every rule's findings, sorted by line then code, without exact duplicates."""
    rules = RULES if model.is_do_code else (missing_binding,)
    found = {f for rule in rules for f in rule(model)}
    return sorted(found, key=lambda f: (f.line, f.code, f.message))
