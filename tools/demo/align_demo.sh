#!/usr/bin/env bash
# make align-demo: the alignment methods side by side on the embedded demo
# model and data. From the SFT policy (the demo's LoRA adapter, --adapter
# demo): a reward model on the preference pairs, then DPO, PPO (against the
# reward model), GRPO (against the arithmetic checker) and RLAIF -> DPO,
# each continued from the SFT adapter with it as the reference. Every
# policy is then compared with the SFT policy by `llmlab align-eval` on the
# held-out instruction tasks: win rate under the reward model, exact-match
# accuracy, KL per answer token to the SFT policy.
# Outputs under runs/align-demo (OUT=...); the table goes to summary.md.
# About 5-10 minutes on 2 cores.
set -euo pipefail

B=${LLMLAB:-./bin/llmlab}
OUT=${OUT:-runs/align-demo}
DATA=${DATA:-assets/data}
N=${N:-200} # held-out tasks for align-eval (200: all)

rm -rf "$OUT"
mkdir -p "$OUT/logs" "$OUT/data"
start=$SECONDS
timings=()

# step NAME CMD...: runs CMD with its output in logs/NAME.log and times it.
step() {
	local name=$1 t0=$SECONDS
	shift
	printf '%-12s ' "$name"
	if ! "$@" >"$OUT/logs/$name.log" 2>&1; then
		echo "FAILED; the end of $OUT/logs/$name.log:"
		tail -n 20 "$OUT/logs/$name.log"
		exit 1
	fi
	local dt=$((SECONDS - t0))
	timings+=("$name ${dt}s")
	echo "${dt}s"
}

# The arithmetic tasks (add, subtract) for GRPO and its held-out check.
grep -E '"task":"(add|subtract)"' "$DATA/instruct_train.jsonl" >"$OUT/data/arith_train.jsonl"
grep -E '"task":"(add|subtract)"' "$DATA/instruct_eval.jsonl" >"$OUT/data/arith_eval.jsonl"
# The demo model's context is 256 tokens: the judge gets a short rubric.
echo "Prefer the correct, short, polite answer." >"$OUT/data/rubric.txt"

echo "== training (logs in $OUT/logs)"
step rm $B rm --model demo --data "$DATA/prefs_train.jsonl" --out "$OUT/rm" \
	--steps 60 --batch 8 --lr 1e-3 --eval-frac 0
step rm-score $B score --model "$OUT/rm/final" --data "$DATA/prefs_eval.jsonl" --json
rm_acc=$(tail -n 1 "$OUT/logs/rm-score.log" | grep -o '"accuracy":[0-9.eE+-]*' | cut -d: -f2)

step dpo $B dpo --model demo --adapter demo --data "$DATA/prefs_train.jsonl" --out "$OUT/dpo" \
	--steps 40 --batch 8 --lr 5e-4 --beta 0.1 --eval-frac 0.05

step ppo $B ppo --model demo --adapter demo --reward-model "$OUT/rm/final" --data "$DATA/instruct_train.jsonl" \
	--out "$OUT/ppo" --iterations 40 --prompts 8 --lr 1e-4 --kl-coef 0.1

# The checker: 1 for the right number, plus partial credit within 3.
step grpo $B grpo --model demo --adapter demo --data "$OUT/data/arith_train.jsonl" --eval "$OUT/data/arith_eval.jsonl" \
	--reward number --reward '0.3*number:3' --out "$OUT/grpo" --steps 120 --prompts 4 --group 8 --lr 2e-4

# RLAIF: the SFT policy answers each prompt twice; the demo model (local
# log-prob judge, asked in both orders) picks the better answer.
step rlaif $B rlaif --model demo --adapter demo --judge demo --rubric "$OUT/data/rubric.txt" --prompts demo \
	--out "$OUT/data/rlaif_pairs.jsonl" --limit 200 --samples 2 --max-new 24 --tie-margin 0
rlaif_pairs=$(wc -l <"$OUT/data/rlaif_pairs.jsonl")
rlaif_note="local judge: $(grep '^wrote' "$OUT/logs/rlaif.log" | sed 's/ to [^:]*:/:/' || true)"
if [ "$rlaif_pairs" -lt 4 ]; then
	# No verdicts from the local judge: ask the demo model over HTTP
	# instead (llmlab serve on a free port), where it must reply A or B.
	$B serve --model demo --adapter demo --addr 127.0.0.1:0 >"$OUT/logs/serve.log" 2>&1 &
	serve_pid=$!
	trap 'kill $serve_pid 2>/dev/null || true' EXIT
	url=
	for _ in $(seq 50); do
		url=$(grep -o 'http://127.0.0.1:[0-9]*' "$OUT/logs/serve.log" | head -n 1 || true)
		[ -n "$url" ] && break
		sleep 0.2
	done
	t0=$SECONDS
	printf '%-12s ' rlaif-http
	if [ -n "$url" ] && $B rlaif --model demo --adapter demo --judge "$url" --rubric "$OUT/data/rubric.txt" --prompts demo \
		--out "$OUT/data/rlaif_http_pairs.jsonl" --limit 60 --samples 2 --max-new 24 --tie-margin 0 --cache none \
		--max-malformed 1000 --retries 1 >"$OUT/logs/rlaif-http.log" 2>&1; then
		n=$(wc -l <"$OUT/data/rlaif_http_pairs.jsonl")
		rlaif_note="$rlaif_note; HTTP judge (llmlab serve): $(grep '^wrote' "$OUT/logs/rlaif-http.log" | sed 's/ to [^:]*:/:/' || true)"
		if [ "$n" -gt "$rlaif_pairs" ]; then
			cp "$OUT/data/rlaif_http_pairs.jsonl" "$OUT/data/rlaif_pairs.jsonl"
			rlaif_pairs=$n
		fi
	else
		rlaif_note="$rlaif_note; HTTP judge (llmlab serve): failed, see logs/rlaif-http.log"
	fi
	echo "$((SECONDS - t0))s"
	timings+=("rlaif-http $((SECONDS - t0))s")
	kill $serve_pid 2>/dev/null || true
fi
if [ "$rlaif_pairs" -ge 4 ]; then
	step rlaif-dpo $B dpo --model demo --adapter demo --data "$OUT/data/rlaif_pairs.jsonl" --out "$OUT/rlaif-dpo" \
		--steps 40 --batch 8 --lr 5e-4 --beta 0.1 --eval-frac 0
else
	echo "rlaif-dpo    skipped: the judge gave $rlaif_pairs non-tie verdicts"
fi

echo "== evaluation against the SFT policy ($N held-out tasks)"
table="$OUT/table.txt"
: >"$table"
# evaluate LABEL ADAPTER [DATA]
evaluate() {
	local label=$1 adapter=$2 data=${3:-}
	local args=(--model demo --adapter "$adapter" --ref-adapter demo --reward-model "$OUT/rm/final" --n "$N" --label "$label")
	if [ -n "$data" ]; then
		args+=(--data "$data")
	fi
	step "eval-$label" $B align-eval "${args[@]}"
	if [ ! -s "$table" ]; then
		grep '^policy' "$OUT/logs/eval-$label.log" >"$table"
	fi
	tail -n 1 "$OUT/logs/eval-$label.log" >>"$table"
}
evaluate sft demo
evaluate dpo "$OUT/dpo/final"
evaluate ppo "$OUT/ppo/final"
evaluate grpo "$OUT/grpo/final"
if [ -d "$OUT/rlaif-dpo/final" ]; then
	evaluate rlaif-dpo "$OUT/rlaif-dpo/final"
fi
# GRPO's own target: the arithmetic tasks alone.
evaluate sft-arith demo "$OUT/data/arith_eval.jsonl"
evaluate grpo-arith "$OUT/grpo/final" "$OUT/data/arith_eval.jsonl"

total=$((SECONDS - start))
{
	echo "# align-demo"
	echo
	echo "Every policy continues the demo's LoRA SFT adapter (the reference of its KL);"
	echo "align-eval compares its greedy answers with the SFT policy's on held-out tasks"
	echo "(the *-arith rows: the $(wc -l <"$OUT/data/arith_eval.jsonl") add/subtract tasks only)."
	echo "win-rate: RM score above the SFT answer's (ties, mostly identical answers, count half);"
	echo "accuracy: exact match (ref-acc: the SFT policy's); kl/tok: mean log p_policy - log p_SFT"
	echo "over the policy's answer tokens; length: answer tokens."
	echo "Targets: DPO and PPO aim at the reward model's preferences (win-rate), GRPO at the"
	echo "arithmetic checker (grpo-arith accuracy), each with a KL leash to the SFT policy."
	echo
	echo '```'
	cat "$table"
	echo '```'
	echo
	echo "- reward model: pairwise accuracy $(awk -v a="$rm_acc" 'BEGIN{printf "%.1f%%", 100*a}') on prefs_eval.jsonl (LoRA on the base)"
	echo "- RLAIF (judge: the demo model with the SFT adapter, asked in both orders; a verdict needs both to agree):"
	echo "  $rlaif_note"
	echo "- time: ${total}s in all; $(
		IFS=,
		echo "${timings[*]}"
	)"
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
