"""NumPy and pandas values in the msgpack codec: ext codes 112..116, encoders and decoders.

NumPy arrays and scalars are stored as dtype, shape, order and raw bytes; pandas DataFrame /
Series / Index as their labels and one array per column, kind by kind (numpy, object, string,
category, nullable, tz-aware, period, interval, pyarrow). numpy, pandas and pyarrow are
imported inside the functions, only when a value of theirs is encoded or decoded, so importing
the codec never loads them.

Separate from :mod:`hokuro.model.codec` because this is a third of the codec's code and serves only
values of two optional libraries: the core codec reads without it. The Codec dispatches here by
the module of a value's type and holds these codes' decoders; this module never imports codec
(``pack`` / ``unpack`` come in as arguments, the shared pieces from :mod:`hokuro.model.codec_base`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timezone
from typing import Any
from zoneinfo import ZoneInfo

from msgpack import ExtType

from ..errors import MissingDependency
from .codec_base import Pack, Unencodable, short_repr, tz_from, tz_state

# Built-in ext codes, in hokuro's range 96..127 (96..110 are listed in codec_types.py, 111 in
# codec.py). A code, once written to a ledger, keeps its meaning forever.
_NDARRAY = 112
_NPSCALAR = 113
_DATAFRAME = 114
_SERIES = 115
_INDEX = 116


# -- NumPy ---------------------------------------------------------------------------------------

def _encode_numpy(obj: Any, pack: Pack) -> ExtType:
    import numpy as np

    if type(obj) is np.ndarray:
        return ExtType(_NDARRAY, pack(_ndarray_state(obj)))
    if isinstance(obj, np.generic):
        descr = np.lib.format.dtype_to_descr(obj.dtype)
        # An empty str_ / bytes_ has an item size of 0, yet tobytes() pads it: store nothing.
        data = obj.tobytes() if obj.dtype.itemsize else b""
        return ExtType(_NPSCALAR, pack([descr, data]))
    raise Unencodable(obj)


def _ndarray_state(array: Any) -> list:
    import numpy as np

    if array.dtype.hasobject:
        raise Unencodable(array, "it is a NumPy array of dtype object, which holds arbitrary "
                           "Python objects; convert it with .tolist() (each element is then "
                           "encoded on its own) or give it a fixed dtype")
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        order, flat = "F", array.T  # the transpose of an F-ordered array is C-contiguous
    else:
        order, flat = "C", np.ascontiguousarray(array)
    try:
        data: Any = memoryview(flat)  # the packer copies from the view: one copy, not two
    except (ValueError, TypeError, BufferError):
        data = flat.tobytes()  # dtypes without a buffer format (datetime64, ...)
    return [np.lib.format.dtype_to_descr(array.dtype), list(array.shape), order, data]


def _numpy_dtype(descr: Any) -> Any:
    import numpy as np

    dtype = np.lib.format.descr_to_dtype(descr)
    if dtype.hasobject:
        # Bytes read as object pointers would be memory corruption: never.
        raise ValueError("a NumPy payload claims dtype object")
    return dtype


def _ndarray_from(state: Any) -> Any:
    import numpy as np

    descr, shape, order, data = state
    dtype = _numpy_dtype(descr)
    if order not in ("C", "F") or not all(type(n) is int for n in shape):
        raise ValueError("bad NumPy array header")
    if dtype.itemsize == 0:
        if data:
            raise ValueError("bytes given for an array of empty items")
        return np.empty(tuple(shape), dtype=dtype, order=order)
    # frombuffer views immutable bytes; the copy gives the caller a normal, writable array.
    view = np.frombuffer(data, dtype=dtype).reshape(tuple(shape), order=order)
    return view.copy(order=order)


def _npscalar_from(state: Any) -> Any:
    import numpy as np

    descr, data = state
    dtype = _numpy_dtype(descr)
    if len(data) != dtype.itemsize:
        raise ValueError("a NumPy scalar payload of the wrong size")
    if dtype.itemsize == 0:
        return np.zeros((), dtype=dtype)[()]
    return np.frombuffer(data, dtype=dtype).copy()[0]


# -- pandas (without pyarrow unless a column is pyarrow-backed) ---------------------------------

def _encode_pandas(obj: Any, pack: Pack) -> ExtType:
    import pandas as pd

    kind = type(obj)
    try:
        if kind is pd.DataFrame:
            columns = []
            for position in range(obj.shape[1]):
                try:
                    columns.append(pack(_array_state(obj.iloc[:, position].array)))
                except Unencodable as exc:
                    exc.notes.append(f"in column {short_repr(obj.columns[position])}")
                    raise
            state = [_index_state(obj.columns), _index_state(obj.index), columns, obj.attrs,
                     obj.flags.allows_duplicate_labels]
            return ExtType(_DATAFRAME, pack(state))
        if kind is pd.Series:
            state = [obj.name, _index_state(obj.index), _array_state(obj.array), obj.attrs,
                     obj.flags.allows_duplicate_labels]
            return ExtType(_SERIES, pack(state))
        if isinstance(obj, pd.Index):
            return ExtType(_INDEX, pack(_index_state(obj)))
    except Unencodable as exc:
        exc.anchor = obj  # the path search cannot enter a pandas object: point at it
        raise
    raise Unencodable(obj)


def _index_state(index: Any) -> list:
    import pandas as pd

    kind = type(index)
    if kind is pd.RangeIndex:
        return ["range", index.start, index.stop, index.step, index.name]
    if kind is pd.MultiIndex:
        return ["multi", [_index_state(level) for level in index.levels],
                [code.copy() for code in index.codes], list(index.names)]
    freq = None
    if isinstance(index, pd.DatetimeIndex | pd.TimedeltaIndex) and index.freq is not None:
        freq = index.freqstr
    return ["index", _array_state(index.array), index.name, freq]


def _index_from(state: Any) -> Any:
    import pandas as pd

    kind = state[0]
    if kind == "range":
        _, start, stop, step, name = state
        return pd.RangeIndex(start, stop, step, name=name)
    if kind == "multi":
        _, levels, codes, names = state
        return pd.MultiIndex(levels=[_index_from(level) for level in levels], codes=codes,
                             names=names, verify_integrity=True)
    if kind == "index":
        _, array_state, name, freq = state
        values = _array_from(array_state)
        index = pd.Index(values, dtype=values.dtype, name=name, copy=False)
        if freq is not None:
            rebuild = pd.DatetimeIndex if isinstance(index, pd.DatetimeIndex) else pd.TimedeltaIndex
            index = rebuild(index, freq=freq)
        return index
    raise ValueError(f"bad pandas index kind {kind!r}")


def _array_state(values: Any) -> list:
    """One column (or index) of values as data, kind by kind, without pyarrow when possible."""
    import numpy as np
    import pandas as pd

    if type(values) is pd.arrays.NumpyExtensionArray:  # exact: StringArray subclasses it
        values = values.to_numpy()  # a plain NumPy column, wrapped: unwrap to see its dtype
    dtype = values.dtype
    if isinstance(dtype, np.dtype):
        array = np.asarray(values)
        if dtype.kind == "O":
            # Each element goes through the codec, so it comes back with its own type.
            return ["object", array.tolist()]
        return ["numpy", array]
    if isinstance(dtype, pd.StringDtype):
        # A copy: to_numpy may hand back the column's own array, which must not change.
        items = np.array(values.to_numpy(dtype=object), dtype=object, copy=True)
        # Missing entries are stored as None whatever marker (NA or nan) this dtype uses;
        # the dtype brings its marker back. (to_numpy's na_value=None is not honoured by
        # every storage, so the mask does it.)
        items[np.asarray(values.isna(), dtype=bool)] = None
        return ["string", dtype.storage, dtype.na_value is pd.NA, items.tolist()]
    if isinstance(dtype, pd.CategoricalDtype):
        return ["category", np.asarray(values.codes), _index_state(dtype.categories),
                bool(dtype.ordered)]
    if isinstance(values, pd.arrays.IntegerArray | pd.arrays.FloatingArray
                  | pd.arrays.BooleanArray):
        fill = dtype.numpy_dtype.type(0)
        return ["masked", values.to_numpy(dtype=dtype.numpy_dtype, na_value=fill),
                np.asarray(values.isna(), dtype=bool)]
    if isinstance(dtype, pd.DatetimeTZDtype):
        utc = np.asarray(values, dtype=f"datetime64[{dtype.unit}]")
        tz = dtype.tz
        if type(tz) in (timezone, ZoneInfo):
            return ["datetimetz", utc, tz_state(values, tz), None]
        return ["datetimetz", utc, None, str(dtype)]  # pytz / dateutil: pandas' own name
    if isinstance(dtype, pd.PeriodDtype):
        return ["period", np.asarray(values.asi8), values.freqstr]
    if isinstance(dtype, pd.IntervalDtype):
        return ["interval", _array_state(values.left.array), _array_state(values.right.array),
                values.closed]
    if isinstance(dtype, pd.ArrowDtype):
        return ["arrow", _arrow_bytes(values)]
    raise Unencodable(values, f"pandas dtype {dtype} is not one hokuro rebuilds faithfully "
                       "(numpy dtypes, object, string, category, nullable Int/Float/boolean, "
                       "datetime with tz, period, interval, pyarrow); convert the column")


def _array_from(state: Any) -> Any:
    import numpy as np
    import pandas as pd

    kind = state[0]
    if kind == "numpy":
        return state[1]
    if kind == "object":
        items = state[1]
        # fromiter stores each item as one element; np.array(items) would unpack sequences.
        return np.fromiter(items, dtype=object, count=len(items))
    if kind == "string":
        _, storage, missing_is_na, items = state
        try:
            dtype = pd.StringDtype(storage=storage, na_value=pd.NA if missing_is_na else np.nan)
        except TypeError:  # pandas before 2.3 has no na_value parameter
            dtype = pd.StringDtype(storage=storage)
        return pd.array(items, dtype=dtype)
    if kind == "category":
        _, codes, categories, ordered = state
        dtype = pd.CategoricalDtype(_index_from(categories), ordered=ordered)
        return pd.Categorical.from_codes(codes, dtype=dtype)
    if kind == "masked":
        _, data, mask = state
        if mask.dtype != bool or mask.shape != data.shape:
            raise ValueError("bad mask of a nullable pandas column")
        cls = {"b": pd.arrays.BooleanArray, "f": pd.arrays.FloatingArray}.get(
            data.dtype.kind, pd.arrays.IntegerArray)
        return cls(data, mask)
    if kind == "datetimetz":
        _, utc, tz_state, dtype_name = state
        tz = tz_from(tz_state) if tz_state is not None else pd.api.types.pandas_dtype(
            dtype_name).tz
        return pd.DatetimeIndex(utc).tz_localize("UTC").tz_convert(tz).array
    if kind == "period":
        _, ordinals, freq = state
        return pd.arrays.PeriodArray(ordinals, dtype=pd.PeriodDtype(freq))
    if kind == "interval":
        _, left, right, closed = state
        return pd.arrays.IntervalArray.from_arrays(_array_from(left), _array_from(right),
                                                   closed=closed)
    if kind == "arrow":
        return _arrow_array(state[1])
    raise ValueError(f"bad pandas column kind {kind!r}")


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as exc:
        raise MissingDependency("pyarrow", "pandas") from exc
    return pyarrow


def _arrow_bytes(values: Any) -> bytes:
    pa = _pyarrow()
    table = pa.table({"values": pa.array(values)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _arrow_array(data: bytes) -> Any:
    import pandas as pd

    pa = _pyarrow()
    column = pa.ipc.open_stream(data).read_all().column("values")
    return pd.arrays.ArrowExtensionArray(column)


def _frame_from(state: Any, unpack: Callable[[bytes], Any]) -> Any:
    import pandas as pd

    columns_state, index_state, packed_columns, attrs, allows_duplicates = state
    columns = _index_from(columns_state)
    index = _index_from(index_state)
    arrays = [_array_from(unpack(packed)) for packed in packed_columns]
    if len(arrays) != len(columns):
        raise ValueError("column count does not match the column labels")
    if arrays:
        # Built by position and labelled after: labels may repeat, and Series given to the
        # DataFrame constructor keep their exact dtype (a list or object array would be
        # re-inferred, e.g. to pandas' string dtype).
        frame = pd.DataFrame(
            {position: pd.Series(array, dtype=array.dtype, copy=False)
             for position, array in enumerate(arrays)}, copy=False)
        frame.index = index
    else:
        frame = pd.DataFrame(index=index)
    frame.columns = columns
    frame.attrs = attrs
    if not allows_duplicates:
        frame = frame.set_flags(allows_duplicate_labels=False)
    return frame


def _series_from(state: Any) -> Any:
    import pandas as pd

    name, index_state, array_state, attrs, allows_duplicates = state
    array = _array_from(array_state)
    series = pd.Series(array, index=_index_from(index_state), name=name, dtype=array.dtype,
                       copy=False)
    series.attrs = attrs
    if not allows_duplicates:
        series = series.set_flags(allows_duplicate_labels=False)
    return series
