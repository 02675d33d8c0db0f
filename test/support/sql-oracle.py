"""What the system's SQLite (through Python's own libsqlite3, by ctypes) makes of SQL texts.

Reads a JSON array of {"schema": ..., "texts": [...]} on stdin and writes one JSON array of
results to stdout, one per text:
  {"error": message}                               the first statement does not compile
  {"count": 0}                                     no statement at all
  {"count": 1 | 2, "params": [...], "actions": [...], "readonly": bool, "columns": n}
where count 2 means "two or more" (a second statement that fails to compile counts), params are
sqlite3_bind_parameter_name for 1..sqlite3_bind_parameter_count (null for an anonymous ?),
actions are the authorizer calls made while the first statement compiled ([code, arg1, arg2]),
readonly is sqlite3_stmt_readonly and columns sqlite3_column_count.

Each text gets its own in-memory connection, so what one statement applies never leaks into the
next. Texts are encoded as sql.js encodes them (a lone surrogate as its own three bytes).
"""

import ctypes
import json
import sys

import _sqlite3

lib = ctypes.CDLL(_sqlite3.__file__)
c_void_p, c_int, c_char_p = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p

lib.sqlite3_open.argtypes = [c_char_p, ctypes.POINTER(c_void_p)]
lib.sqlite3_close_v2.argtypes = [c_void_p]
lib.sqlite3_exec.argtypes = [c_void_p, c_char_p, c_void_p, c_void_p, c_void_p]
lib.sqlite3_errmsg.argtypes = [c_void_p]
lib.sqlite3_errmsg.restype = c_char_p
lib.sqlite3_prepare_v2.argtypes = [c_void_p, c_void_p, c_int, ctypes.POINTER(c_void_p), ctypes.POINTER(c_void_p)]
lib.sqlite3_finalize.argtypes = [c_void_p]
lib.sqlite3_bind_parameter_count.argtypes = [c_void_p]
lib.sqlite3_bind_parameter_name.argtypes = [c_void_p, c_int]
lib.sqlite3_bind_parameter_name.restype = ctypes.POINTER(ctypes.c_char)
lib.sqlite3_stmt_readonly.argtypes = [c_void_p]
lib.sqlite3_column_count.argtypes = [c_void_p]
lib.sqlite3_libversion.restype = c_char_p
AUTHORIZER = ctypes.CFUNCTYPE(c_int, c_void_p, c_int, c_char_p, c_char_p, c_char_p, c_char_p)
lib.sqlite3_set_authorizer.argtypes = [c_void_p, AUTHORIZER, c_void_p]


def text_of(pointer):
    if not pointer:
        return None
    return ctypes.string_at(pointer).decode("utf-8", "surrogatepass")


def analyse(schema, text):
    db = c_void_p()
    lib.sqlite3_open(b":memory:", ctypes.byref(db))
    try:
        lib.sqlite3_exec(db, schema.encode(), None, None, None)
        actions = []

        def record(_data, code, a1, a2, _a3, _a4):
            actions.append([code, None if a1 is None else a1.decode("utf-8", "replace"), None if a2 is None else a2.decode("utf-8", "replace")])
            return 0

        callback = AUTHORIZER(record)
        lib.sqlite3_set_authorizer(db, callback, None)
        data = ctypes.create_string_buffer(text.encode("utf-8", "surrogatepass"))
        start = ctypes.cast(data, c_void_p).value
        stmt, tail = c_void_p(), c_void_p()
        if lib.sqlite3_prepare_v2(db, start, -1, ctypes.byref(stmt), ctypes.byref(tail)) != 0:
            return {"error": lib.sqlite3_errmsg(db).decode("utf-8", "replace")}
        if not stmt.value:
            return {"count": 0}
        first_actions = list(actions)
        count_params = lib.sqlite3_bind_parameter_count(stmt)
        result = {
            "count": 1,
            "params": [text_of(lib.sqlite3_bind_parameter_name(stmt, i)) for i in range(1, count_params + 1)],
            "actions": first_actions,
            "readonly": bool(lib.sqlite3_stmt_readonly(stmt)),
            "columns": lib.sqlite3_column_count(stmt),
        }
        lib.sqlite3_finalize(stmt)
        rest, after = c_void_p(), c_void_p()
        if lib.sqlite3_prepare_v2(db, tail, -1, ctypes.byref(rest), ctypes.byref(after)) != 0 or rest.value:
            result["count"] = 2
        if rest.value:
            lib.sqlite3_finalize(rest)
        return result
    finally:
        lib.sqlite3_close_v2(db)


request = json.loads(sys.stdin.buffer.read().decode("utf-8", "surrogatepass"))
version = lib.sqlite3_libversion().decode()
results = [analyse(request["schema"], text) for text in request["texts"]]
sys.stdout.buffer.write(json.dumps({"version": version, "results": results}).encode("utf-8", "surrogatepass"))
