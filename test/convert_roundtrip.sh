# convert to graft-weights and safetensors: a seeded torchvision model's
# file (test/convert_ref.py) written again as .h5 must hold the same
# attributes and the same parameters bit for bit; as .safetensors, parsed by
# hand (and by the safetensors package when installed), torch's state_dict
# bit for bit in name order with contiguous offsets and the metadata the
# contract names. With and without class names; no temporary left behind.
. "$(dirname "$0")/lib.sh"
need_python
scratch convert-roundtrip
CV=$GRAFT_BIN/convert
REF=$GRAFT_SOURCE_DIR/test/convert_ref.py

for case in "names --names" "plain"; do
  set -- $case
  name=$1
  shift
  "$PY" "$REF" model --arch alexnet --classes 5 --seed 11 "$@" -o "$T/$name.h5" ||
    { fail "$name: reference model"; continue; }
  if "$CV" "$T/$name.h5" "$T/$name-again.h5" && out=$("$PY" "$REF" same-h5 "$T/$name.h5" "$T/$name-again.h5"); then
    ok "$name: .h5 again: $out"
  else
    fail "$name: .h5 again: $out"
  fi
  if "$CV" "$T/$name.h5" "$T/$name.safetensors" &&
     out=$("$PY" "$REF" safetensors "$T/$name.h5" "$T/$name.safetensors"); then
    ok "$name: $(echo "$out" | tr '\n' ' ')"
  else
    fail "$name: .safetensors: $out"
  fi
  # graft reads its own safetensors back (once graft_model_load reads them)
  if "$CV" "$T/$name.safetensors" "$T/$name-back.h5" 2> "$T/back.err"; then
    out=$("$PY" "$REF" same-h5 "$T/$name.h5" "$T/$name-back.h5") &&
      ok "$name: .safetensors read back by graft: $out" || fail "$name: read back: $out"
  elif grep -q "not an HDF5 file" "$T/back.err"; then
    ok "$name: .safetensors not read back: this graft_model_load reads HDF5 only"
  else
    fail "$name: .safetensors read back: $(cat "$T/back.err")"
  fi
done
left=$(find "$T" -name '*.tmp.*')
[ -z "$left" ] && ok "no temporary left" || fail "temporaries left: $left"
finish
