#!/bin/bash
# The bad-input run of issue 9, as a new user would try it: ~100 cases (tampered checkpoints,
# non-finite weights and logits, sources that do not match their config, signals, file-system
# failures, loose options) against the CLI on ../shared/models. Each case prints ok/BAD with the
# exit code and the first error line; the last line counts cases and bad outcomes. The full-disk and
# permission cases need root (tmpfs mounts, setpriv to 'nobody'); they are skipped otherwise.
# usage: scripts/bad-input/run.sh   (work dir: $TMPDIR/intscale-bad-input, removed at the start)
R=$(cd "$(dirname "$0")/../.." && pwd)
I="node $R/bin/intscale.js"
tamper() { (cd $R && node --import tsx scripts/bad-input/tamper.ts "$@"); }
M=$R/../shared/models/docs-llama-30m
S=$R/../shared/models/stories260K
[ -d $M ] && [ -d $S ] || { echo "needs $M and $S"; exit 2; }
W=${TMPDIR:-/tmp}/intscale-bad-input; rm -rf $W; mkdir -p $W; cd $W
TXT=$W/t.txt; head -c 3000 $R/../shared/data/eval/persuasion.txt > $TXT
export INTSCALE_QUIET=1
N=0; BAD=0
# run NAME EXPECT(fail|ok) PATTERN CMD... : checks rc, one `intscale:` line, no stack trace
run() {
  local name=$1 expect=$2 pat=$3; shift 3
  "$@" > $W/.out 2> $W/.err; local rc=$?
  local lines=$(grep -c '^intscale:' $W/.err); local stack=$(grep -cE '^\s+at |node:internal|Error:.*\n' $W/.err)
  local verdict=ok
  if [ $expect = fail ]; then
    { [ $rc -eq 0 ] || [ $lines -ne 1 ] || [ $stack -ne 0 ] || ! grep -qE -- "$pat" $W/.err; } && verdict=BAD
  else
    { [ $rc -ne 0 ] || [ $stack -ne 0 ] || ! grep -qE -- "$pat" $W/.err $W/.out; } && verdict=BAD
  fi
  N=$((N+1)); [ $verdict = BAD ] && BAD=$((BAD+1))
  printf '%-4s %-44s rc=%-3s %s\n' "$verdict" "$name" "$rc" "$(head -c 170 $W/.err | tr '\n' '|')"
}
fresh() { rm -rf $1; cp -r $W/q $1; }
lefts() { ls -a $W | grep -E '\.tmp-' ; }
check_no_leftovers() { N=$((N+1)); if [ -n "$(lefts)" ]; then BAD=$((BAD+1)); echo "BAD  leftovers after $1: $(lefts)"; else echo "ok   no leftovers after $1"; fi; }

run quantize-good ok 'wrote' $I quantize $M --out $W/q
cp -r $W/q $W/q-pristine
run eval-good ok 'perplexity' $I eval $W/q --text $TXT --max-tokens 200
# --- class 1: tampered checkpoints
for op in shift+1 shifts-1 negate qweight; do for rs in '' resign; do
  [ "$op$rs" = qweightresign ] && continue # a forged qweight with a recomputed checksum is a valid file (separately below)
  fresh $W/c; tamper $W/c $op $rs
  run "eval tampered $op $rs" fail 'model.layers.3.mlp.down_proj' $I eval $W/c --text $TXT --max-tokens 200
  run "inspect tampered $op $rs" fail 'model.layers.3.mlp.down_proj' $I inspect $W/c
done; done
fresh $W/c; tamper $W/c qweight resign
run "LIMIT: qweight edit + recomputed checksum loads" ok '' $I eval $W/c --text $TXT --max-tokens 200; N=$((N-1))
fresh $W/c; tamper $W/c forge resign
run "eval consistent forgery" fail 'amplifier "auto" chooses' $I eval $W/c --text $TXT --max-tokens 200
run "generate consistent forgery" fail 'amplifier "auto" chooses' $I generate $W/c --max-new 3
fresh $W/c; tamper $W/c delete
run "eval deleted layer" fail 'missing' $I eval $W/c --text $TXT --max-tokens 200
run "inspect deleted layer" fail 'missing' $I inspect $W/c
for kv in 'num_hidden_layers=7' 'num_hidden_layers=9' 'hidden_size=256' 'vocab_size=4095' 'vocab_size=4097' 'qc.amplifier="x"' 'qc.amplifier=31' 'qc.method="foo"' 'qc.sym=false' 'qc.group_size=100' 'qc.group_size=64' 'qc.act_bits=4' 'qc.scale="fp8"' 'qc.bits=3' 'qc.amplifier=12'; do
  fresh $W/c; python3 - "$W/c/config.json" "$kv" <<'PY'
import json,sys
f,kv=sys.argv[1],sys.argv[2]; k,v=kv.split('=',1); c=json.load(open(f))
(c['quantization_config'] if k.startswith('qc.') else c)[k.removeprefix('qc.')]=json.loads(v); json.dump(c,open(f,'w'))
PY
  run "eval config $kv" fail 'intscale: ' $I eval $W/c --text $TXT --max-tokens 200
done
fresh $W/c; python3 -c "import json;f='$W/c/config.json';c=json.load(open(f));c['quantization_config']['act_bits']=16;json.dump(c,open(f,'w'))"
run "eval act_bits 16 (legit mode W4A16)" ok 'perplexity' $I eval $W/c --text $TXT --max-tokens 200
fresh $W/c; python3 -c "import json;f='$W/c/quantization_report.json';r=json.load(open(f));r['layers'][0]['headroom']=0.0001;r['layers'][0]['mse_is']=0;json.dump(r,open(f,'w'))"
run "inspect stale report" ok 'not matching the tensors' $I inspect $W/c
fresh $W/c; echo '{"layers":[' > $W/c/quantization_report.json
run "inspect malformed report" ok 'not valid JSON' $I inspect $W/c
fresh $W/c; echo '[1,2]' > $W/c/quantization_report.json
run "inspect report not an object" ok 'expected a JSON object' $I inspect $W/c
# --- class 2: non-finite
cp -r $M $W/m; chmod -R u+w $W/m
tamper $W/m nan-weight
run "quantize NaN weight" fail 'up_proj.weight: non-finite weight NaN' $I quantize $W/m --out $W/o
run "eval NaN weight" fail 'non-finite weight NaN' $I eval $W/m --text $TXT --max-tokens 200
run "compare NaN weight" fail 'non-finite weight NaN' $I compare $W/m --text $TXT --max-tokens 200
rm -rf $W/m; cp -r $M $W/m; chmod -R u+w $W/m; tamper $W/m nan-norm
run "quantize NaN norm" fail 'input_layernorm.weight: non-finite' $I quantize $W/m --out $W/o
mkdir $W/ov; python3 - $S/stories260K.bin $W/ov/model.bin <<'PY'
import struct,sys
b=bytearray(open(sys.argv[1],'rb').read()); d,h,L,nh,nkv,v,_=struct.unpack('<7i',b[:28]); kv=nkv*d//nh
off=28+4*(abs(v)*d+L*(2*d+2*d*d+2*kv*d+3*d*h))
for i in range(d): struct.pack_into('<f',b,off+4*i,3e38)
open(sys.argv[2],'wb').write(b)
PY
cp $S/tok512.bin $W/ov/
run "eval overflow logits" fail 'perplexity is NaN' $I eval $W/ov/model.bin --text $TXT --ctx 64
run "compare overflow logits" fail 'perplexity is NaN' $I compare $W/ov/model.bin --text $TXT --ctx 64 --group -1
# --- class 3: source vs config
rm -rf $W/m; cp -r $M $W/m; chmod -R u+w $W/m
python3 -c "import json;f='$W/m/model.safetensors.index.json';c=json.load(open(f));del c['weight_map']['model.layers.2.mlp.up_proj.weight'];json.dump(c,open(f,'w'))"
run "quantize tensor missing from index" fail 'missing tensor model.layers.2.mlp.up_proj.weight' $I quantize $W/m --out $W/o
run "eval tensor missing from index" fail 'missing tensor' $I eval $W/m --text $TXT --max-tokens 200
for kv in hidden_size=256 vocab_size=4095 vocab_size=4097 intermediate_size=1024 num_hidden_layers=7 num_hidden_layers=9 num_attention_heads=7; do
  rm -rf $W/m; cp -r $M $W/m; chmod -R u+w $W/m
  python3 -c "import json;f='$W/m/config.json';c=json.load(open(f));k,v='$kv'.split('=');c[k]=int(v);json.dump(c,open(f,'w'))"
  run "quantize source $kv" fail 'intscale: ' $I quantize $W/m --out $W/o
  run "eval source $kv" fail 'intscale: ' $I eval $W/m --text $TXT --max-tokens 200
done
rm -rf $W/m; cp -r $M $W/m; chmod -R u+w $W/m; tamper $W/m i16-weight
run "quantize I16 weight" fail 'dtype I16' $I quantize $W/m --out $W/o
run "eval I16 weight" fail 'dtype I16' $I eval $W/m --text $TXT --max-tokens 200
check_no_leftovers "class 1-3"
# --- class 4: signals
for sig in INT TERM; do
  ( $I quantize $M --out $W/sig 2>$W/.err & p=$!; while ! ls -a $W | grep -q "\.sig\.tmp-$p"; do sleep 0.05; done; sleep 0.5; kill -$sig $p; wait $p; echo "rc=$?" >> $W/.err )
  N=$((N+1)); want=$([ $sig = INT ] && echo 130 || echo 143)
  if grep -q "rc=$want" $W/.err && [ ! -e $W/sig ] && [ -z "$(lefts)" ]; then echo "ok   SIG$sig during quantize: $(tr '\n' '|' < $W/.err)"; else BAD=$((BAD+1)); echo "BAD  SIG$sig: $(cat $W/.err) $(lefts)"; fi
done
( $I quantize $M --out $W/sig 2>/dev/null & p=$!; while ! ls -a $W | grep -q "\.sig\.tmp-$p"; do sleep 0.05; done; sleep 0.5; kill -KILL $p; wait $p )
echo "     after SIGKILL: $(lefts)"
run "quantize after a SIGKILLed run" ok 'removed .*left behind by an interrupted run' $I quantize $M --out $W/sig
check_no_leftovers "SIGKILL + rerun"
mkdir -p $W/dtmp
( TMPDIR=$W/dtmp $I demo 2>$W/.err & p=$!; while [ -z "$(ls $W/dtmp | grep intscale-demo)" ]; do sleep 0.05; done; sleep 0.5; kill -TERM $p; wait $p; echo "rc=$?" >> $W/.err )
N=$((N+1)); if grep -q rc=143 $W/.err && [ -z "$(ls $W/dtmp | grep -v tsx)" ]; then echo "ok   demo SIGTERM: $(tr '\n' '|' < $W/.err | head -c 200)"; else BAD=$((BAD+1)); echo "BAD  demo SIGTERM: $(cat $W/.err) $(ls $W/dtmp)"; fi
# --- class 5: file system
run "quantize --out ''" fail 'must not be empty' $I quantize $M --out ''
touch $W/afile
run "quantize --out below a file" fail 'not a directory' $I quantize $M --out $W/afile/q
ln -s $W/nowhere $W/dangling
run "quantize --out dangling symlink" fail 'dangling symbolic link' $I quantize $M --out $W/dangling
run "quantize --out missing parent" fail 'does not exist' $I quantize $M --out $W/no/such/q
run "quantize --out existing" fail 'already exists' $I quantize $M --out $W/q
run "quantize missing model" fail 'no such file or directory' $I quantize $W/nomodel --out $W/o
run "eval --text missing" fail 'cannot read' $I eval $W/q --text $W/nope.txt
run "eval --text a directory" fail 'cannot read' $I eval $W/q --text $W
run "inspect not a checkpoint" fail 'no quantization_config' $I inspect $M
( $I quantize $M --out $W/race 2>$W/.e1 & $I quantize $M --out $W/race 2>$W/.e2 & wait )
N=$((N+1)); if [ "$(cat $W/.e1 $W/.e2 | grep -c '^intscale:')" = 1 ] && [ -z "$(lefts)" ] && $I inspect $W/race >/dev/null 2>&1; then echo "ok   concurrent quantize: $(cat $W/.e1 $W/.e2 | tr '\n' '|')"; else BAD=$((BAD+1)); echo "BAD  concurrent: $(cat $W/.e1 $W/.e2)"; fi
$I inspect $W/q 2>$W/.err | head -1 >/dev/null; N=$((N+1)); [ -s $W/.err ] && { BAD=$((BAD+1)); echo "BAD  inspect | head: $(cat $W/.err)"; } || echo "ok   inspect | head -1 (quiet)"
$I inspect $W/q --json 2>$W/.err | head -c 10 >/dev/null; N=$((N+1)); [ -s $W/.err ] && { BAD=$((BAD+1)); echo "BAD  inspect --json | head -c: $(cat $W/.err)"; } || echo "ok   inspect --json | head -c 10 (quiet)"
mkdir -p $W/mnt && mount -t tmpfs -o size=6m tmpfs $W/mnt 2>/dev/null && {
  run "quantize onto a full disk (6 MB tmpfs)" fail 'no space left on the device' $I quantize $M --out $W/mnt/q
  N=$((N+1)); [ -z "$(ls -A $W/mnt)" ] && echo "ok   full disk: nothing left on it" || { BAD=$((BAD+1)); echo "BAD  full disk leftovers: $(ls -A $W/mnt)"; }
  umount $W/mnt; }
SZ=$(du -sb $W/q/model.safetensors | cut -f1)
mount -t tmpfs -o size=$((SZ + 200000)) tmpfs $W/mnt 2>/dev/null && {
  run "quantize, disk full at the tokenizer copy" fail 'no space left' $I quantize $M --out $W/mnt/q
  N=$((N+1)); [ -z "$(ls -A $W/mnt)" ] && echo "ok   full disk (tokenizer): nothing left on it" || { BAD=$((BAD+1)); echo "BAD  leftovers: $(ls -A $W/mnt)"; }
  umount $W/mnt; }
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
rm -rf $W/perm; cp -r $M $W/perm; chmod 0700 $W/perm; chmod 0600 $W/perm/tokenizer.json
chmod o+rx $W
run "eval permission denied (as nobody)" fail 'permission denied|EACCES|cannot' setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp $I eval $W/perm --text $TXT
chmod 0755 $W/perm
run "eval tokenizer permission denied (as nobody)" fail 'tokenizer.json' setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp $I eval $W/perm --text $TXT
mkdir -p $W/ro; chmod 0555 $W/ro
run "quantize into read-only dir (as nobody)" fail 'permission denied|EACCES' setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp $I quantize $M --out $W/ro/q
fi
# --- class 6: loose options
run "generate --temperature ''" fail "expected a number, got ''" $I generate $S --temperature ''
run "generate --top-p ''" fail "expected a number" $I generate $S --top-p ''
run "generate --temperature abc" fail "expected a number" $I generate $S --temperature abc
run "generate --max-new ''" fail "expected an integer" $I generate $S --max-new ''
echo keep > $W/p.png
run "compare --plot existing" fail 'already exists' $I compare $S --text $TXT --ctx 64 --group -1 --plot $W/p.png
N=$((N+1)); [ "$(cat $W/p.png)" = keep ] && echo "ok   --plot existing file untouched" || { BAD=$((BAD+1)); echo "BAD  plot overwritten"; }
run "compare --plot --force" ok 'wrote' $I compare $S --text $TXT --ctx 64 --group -1 --plot $W/p.png --force
# --- batch (continuous batching): prompts files, --out
printf 'Once upon a time\nTom\n' > $W/prompts.txt; printf '{"prompt": "Lily"}\n{"text": "x"}\n' > $W/bad.jsonl; printf '\n\n' > $W/empty.txt
run "batch good" ok 'new tokens/s' $I batch $S --prompts $W/prompts.txt --out $W/b.jsonl --max-new 5 --device cpu
run "batch --out existing" fail 'already exists' $I batch $S --prompts $W/prompts.txt --out $W/b.jsonl --device cpu
run "batch --prompts missing" fail 'cannot read the prompts: no such file' $I batch $S --prompts $W/nope.txt --out $W/b2.jsonl --device cpu
run "batch --prompts bad JSON line" fail 'bad.jsonl:2: expected a JSON string' $I batch $S --prompts $W/bad.jsonl --out $W/b2.jsonl --device cpu
run "batch --prompts empty" fail 'no prompts' $I batch $S --prompts $W/empty.txt --out $W/b2.jsonl --device cpu
run "batch --max-rows < --max-batch" fail 'max-rows' $I batch $S --prompts $W/prompts.txt --out $W/b2.jsonl --max-batch 8 --max-rows 4 --device cpu
N=$((N+1)); [ ! -e $W/b2.jsonl ] && echo "ok   no partial batch output" || { BAD=$((BAD+1)); echo "BAD  batch output left behind"; }
run "serve --port abc" fail "must be an integer" $I serve $S --port abc --device cpu
run "serve --max-rows < --max-batch" fail 'max-rows' $I serve $S --max-batch 4 --max-rows 2 --device cpu
run "serve --chat-template missing" fail 'nope.jinja: cannot read the chat template' $I serve $S --chat-template $W/nope.jinja --device cpu
printf '{%% for m in messages %%}unclosed' > $W/bad.jinja
run "serve --chat-template does not parse" fail 'bad.jinja: the chat template does not parse' $I serve $S --chat-template $W/bad.jinja --device cpu
run "serve --api-key empty" fail '--api-key: an empty key would let anyone in' $I serve $S --api-key '' --device cpu
run "serve --mode on the CPU" fail '--mode: is a GPU option' $I serve $S --mode w4a8-is --device cpu
run "bench serve --rate 0" fail '--rate: expected requests a second > 0' $I bench serve $S --rate 0 --device cpu
run "bench serve --mode on the CPU" fail '--mode: is a GPU option' $I bench serve $S --mode w4a8-is --device cpu --requests 2
fresh $W/c; f=$(ls $W/c/*.safetensors | tail -1); printf 'junk' >> $f
run "eval trailing bytes after last tensor" fail 'trailing bytes' $I eval $W/c --text $TXT --max-tokens 200
check_no_leftovers "all"
N=$((N+1)); diff -r $W/q $W/q-pristine >/dev/null && echo "ok   the good checkpoint is unchanged (no data lost)" || { BAD=$((BAD+1)); echo "BAD  good checkpoint changed"; }
echo "CASES $N BAD $BAD"
