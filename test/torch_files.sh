# .pth (torch.save's zip and legacy formats) and safetensors files through
# classify: made now by PyTorch from seeded torchvision models
# (make_torch_files.py: zip and legacy, bare and wrapped, tensors at offsets
# into one storage, nn.Parameters, torch 0.3's _rebuild_tensor, fp16 and
# bf16 storages, safetensors with and without metadata, one VGG16), each must
# load to exactly the parameters of the graft-weights export of the same
# model and classify the same; damaged, unsupported and hostile files
# (pickles that call os.system or eval) are refused with exit 2 and one
# line, and their payload never runs. With the shared images, finetune runs
# one epoch from a .pth too.
# GRAFT_TEST_VGG16=0 leaves out the one VGG16 case (0.8 GB of files).
. "$(dirname "$0")/lib.sh"
need_python
"$PY" -c "import torch, torchvision" 2>/dev/null || skip "$PY cannot import torch and torchvision"
scratch torch-files
C=$GRAFT_BIN/classify
MK=("$PY" "$GRAFT_SOURCE_DIR/test/make_torch_files.py")
"$PY" "$GRAFT_SOURCE_DIR/test/make_bad_inputs.py" "$T" > /dev/null || { fail "images"; finish; }
IMG=$T/good.jpg

# probs FILE: classify's JSON with the labels left out (a .pth has no names).
probs() { "$C" -w "$1" --json "$IMG" 2>"$T/stderr" | sed 's/"label": "[^"]*", //g'; }

# same_as REF FILE...: each loads to REF's parameters and classifies the same.
same_as() {
  local ref=$1 f want got
  shift
  want=$(probs "$ref")
  for f in "$@"; do
    if ! "$GRAFT_BIN/test_torch_files" same "$ref" "$f" > "$T/same.log" 2>&1; then
      fail "$(basename "$f"): not the parameters of $(basename "$ref"): $(tail -3 "$T/same.log")"
      continue
    fi
    got=$(probs "$f")
    if [ -n "$want" ] && [ "$got" = "$want" ]; then
      ok "$PHASE $(basename "$f"): the same bits and the same classification as the export"
    else
      fail "$PHASE $(basename "$f"): classified as $got, the export as $want ($(cat "$T/stderr"))"
    fi
  done
}

phase() {
  PHASE=$1
  rm -rf "$T/p" && mkdir -p "$T/p"
  "${MK[@]}" good "$T/p" "$1" || { fail "make_torch_files good $1"; return 1; }
}

if phase f32; then
  same_as "$T/p/ref.h5" "$T/p/zip.pth" "$T/p/legacy.pth" "$T/p/wrapped_zip.pth" \
    "$T/p/wrapped_extra_legacy.pth" "$T/p/offsets_zip.pth" "$T/p/old_legacy.pth" \
    "$T/p/parameters_zip.pth" \
    "$T/p/meta.safetensors"
  "$C" -w "$T/p/wrapped_extra_legacy.pth" "$IMG" 2>&1 >/dev/null |
    grep -q 'unexpected tensor "extra.weight" ignored' &&
    ok "an extra tensor: a warning" || fail "no warning for an extra tensor"
  "$C" -w "$T/p/meta.safetensors" --json "$IMG" | grep -q '"label": "[a-z]*"' &&
    ok "safetensors metadata: class names" || fail "safetensors metadata: no class names"
  # finetune takes them too: one epoch on a few shared images, a new head.
  if [ -d "$HYM" ] &&
     "$PY" "$GRAFT_SOURCE_DIR/test/small_set.py" --data "$HYM" --out "$T/ft" --train 8 --val 4 \
       > /dev/null; then
    cp "$T/p/legacy.pth" "$T/ft/model.pth"
    if "$GRAFT_BIN/finetune" --init "$T/ft/c.h5" --arch alexnet --weights model.pth --data data \
         --epochs 1 --new-head 1 --seed 1 > /dev/null && "$GRAFT_BIN/finetune" -q "$T/ft/c.h5" \
         > /dev/null && [ -s "$T/ft/runs/c/best.h5" ]; then
      ok "finetune from a .pth: one epoch, best.h5 written"
    else
      fail "finetune from a .pth"
    fi
    rm -rf "$T/ft"
  else
    ok "finetune from a .pth: not checked, no shared data at $HYM"
  fi
fi
for p in f16 bf16; do
  phase $p && same_as "$T/p/ref.h5" "$T/p/zip.pth" "$T/p/legacy.pth" "$T/p/plain.safetensors"
done
if phase imagenet; then
  out=$("$C" -w "$T/p/imagenet.pth" --json "$IMG")
  echo "$out" | grep -qE '"label": "[a-zA-Z]' && ok "1000 classes: ImageNet's names" ||
    fail "1000 classes without ImageNet's names: $out"
fi
if [ "${GRAFT_TEST_VGG16:-1}" != 0 ] && phase vgg16; then
  same_as "$T/p/ref.h5" "$T/p/legacy.pth"
fi
rm -rf "$T/p"

# Files that do not fit: one line naming the first tensor that does not.
mkdir -p "$T/e"
"${MK[@]}" good "$T/e" errors || fail "make_torch_files good errors"
e() { expect_fail "$1" 2 "$(basename "$2"): .*$3" -- "$C" -w "$2" "$IMG"; }
e "strided tensor" "$T/e/strided.pth" 'tensor "classifier.6.weight": not contiguous'
e "wrong shape" "$T/e/shape.pth" 'tensor "features.3.weight": shape \[192, 64, 3, 3\], alexnet expects \[192, 64, 5, 5\]'
e "missing tensor" "$T/e/missing.pth" 'tensor "features.0.bias": missing'
e "float64" "$T/e/double.pth" 'tensor "features.0.weight": type DoubleStorage is not supported'
e "unknown kernel" "$T/e/kernel.pth" 'tensor "features.0.weight": a 7x7 kernel'

# Hostile and damaged files: refused, and the payload never runs.
mkdir -p "$T/h"
MARK=$T/h/payload-ran
"${MK[@]}" hostile "$T/h" "$MARK" || fail "make_torch_files hostile"
e "zip .pth calling os.system" "$T/h/system_zip.pth" 'refuses global (os|posix)\.system$'
e "legacy .pth calling os.system" "$T/h/system_legacy.pth" 'refuses global (os|posix)\.system$'
e "zip .pth calling eval" "$T/h/eval_zip.pth" 'refuses global (builtins|__builtin__)\.eval$'
e "legacy .pth calling eval" "$T/h/eval_legacy.pth" 'refuses global (builtins|__builtin__)\.eval$'
[ ! -e "$MARK" ] && ok "no payload ran" || fail "a payload ran: $MARK exists"
e "truncated zip" "$T/h/truncated.pth" 'zip: truncated'
e "truncated legacy" "$T/h/legacy_truncated.pth" 'pth: truncated'
e "wrong CRC" "$T/h/crc.pth" 'CRC-32 mismatch'
e "deflated entry" "$T/h/deflated.pth" 'is compressed \(method 8\); only stored entries'
e "zip bomb" "$T/h/bomb.pth" 'is compressed \(method 8\)'
e "safetensors header length 2^60" "$T/h/hugeheader.safetensors" 'a header of 1152921504606846976 bytes'
e "safetensors offsets past the end" "$T/h/pastend.safetensors" 'tensor "classifier.6.weight": data_offsets .* outside'
e "safetensors overlapping tensors" "$T/h/overlap.safetensors" 'overlap'
e "safetensors short data" "$T/h/short.safetensors" 'outside the .* bytes of data'
e "safetensors int64" "$T/h/dtype.safetensors" 'dtype "I64" is not supported'
finish
