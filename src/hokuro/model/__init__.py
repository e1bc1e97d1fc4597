"""Pure data and rules, no I/O: records, keys, the codec, durations."""
