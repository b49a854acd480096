"""DuckDB itself, through its C API with ctypes, as an independent reader of what duckgate
writes (Parquet files). Uses the same pinned libduckdb.so the build links (DG_DUCKDB_LIB, set by
CTest), never duckgate's code."""

import ctypes
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_LIB = os.path.join(_HERE, "..", "..", "third_party", "duckdb", "lib", "libduckdb.so")


class _Result(ctypes.Structure):
    # duckdb_result: deprecated_column_count, deprecated_row_count, deprecated_rows_changed,
    # deprecated_columns, deprecated_error_message, internal_data.
    _fields_ = [("a", ctypes.c_uint64), ("b", ctypes.c_uint64), ("c", ctypes.c_uint64),
                ("d", ctypes.c_void_p), ("e", ctypes.c_char_p), ("f", ctypes.c_void_p)]


class DuckDB:
    """An in-memory DuckDB instance with full file access (trusted: test side only)."""

    def __init__(self):
        lib = ctypes.CDLL(os.environ.get("DG_DUCKDB_LIB") or DEFAULT_LIB)
        lib.duckdb_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.duckdb_connect.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.duckdb_query.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(_Result)]
        lib.duckdb_result_error.argtypes = [ctypes.POINTER(_Result)]
        lib.duckdb_result_error.restype = ctypes.c_char_p
        lib.duckdb_row_count.argtypes = [ctypes.POINTER(_Result)]
        lib.duckdb_row_count.restype = ctypes.c_uint64
        lib.duckdb_column_count.argtypes = [ctypes.POINTER(_Result)]
        lib.duckdb_column_count.restype = ctypes.c_uint64
        lib.duckdb_value_varchar.argtypes = [ctypes.POINTER(_Result), ctypes.c_uint64,
                                             ctypes.c_uint64]
        lib.duckdb_value_varchar.restype = ctypes.c_void_p
        lib.duckdb_value_is_null.argtypes = [ctypes.POINTER(_Result), ctypes.c_uint64,
                                             ctypes.c_uint64]
        lib.duckdb_value_is_null.restype = ctypes.c_bool
        lib.duckdb_free.argtypes = [ctypes.c_void_p]
        lib.duckdb_destroy_result.argtypes = [ctypes.POINTER(_Result)]
        lib.duckdb_disconnect.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.duckdb_close.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        self.lib = lib
        self.db = ctypes.c_void_p()
        self.con = ctypes.c_void_p()
        assert lib.duckdb_open(None, ctypes.byref(self.db)) == 0
        assert lib.duckdb_connect(self.db, ctypes.byref(self.con)) == 0

    def query(self, sql):
        """Runs sql; returns rows as lists of strings (None for NULL). Raises on error."""
        res = _Result()
        state = self.lib.duckdb_query(self.con, sql.encode(), ctypes.byref(res))
        try:
            if state != 0:
                raise RuntimeError(self.lib.duckdb_result_error(ctypes.byref(res)).decode())
            rows = []
            ncol = self.lib.duckdb_column_count(ctypes.byref(res))
            for r in range(self.lib.duckdb_row_count(ctypes.byref(res))):
                row = []
                for c in range(ncol):
                    if self.lib.duckdb_value_is_null(ctypes.byref(res), c, r):
                        row.append(None)
                        continue
                    p = self.lib.duckdb_value_varchar(ctypes.byref(res), c, r)
                    row.append(ctypes.string_at(p).decode())
                    self.lib.duckdb_free(p)
                rows.append(row)
            return rows
        finally:
            self.lib.duckdb_destroy_result(ctypes.byref(res))

    def close(self):
        self.lib.duckdb_disconnect(ctypes.byref(self.con))
        self.lib.duckdb_close(ctypes.byref(self.db))
