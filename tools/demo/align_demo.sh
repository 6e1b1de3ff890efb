#!/usr/bin/env bash
# make align-demo: the alignment methods side by side on the embedded demo
# model and data. First the SFT policy: a LoRA tuned as `llmlab demo` tunes
# one, but on demonstrations of which 30% are rude or rambling (data gen
# --sloppy 30; the answer is right in every one), as human demonstrations
# carry habits nobody wants. Then a reward model on the preference pairs,
# and DPO, PPO (against the reward model), GRPO (against the arithmetic
# checker) and RLAIF -> DPO (pairs of the SFT policy's samples judged by a
# judge LoRA tuned on the preference pairs), each continued from the SFT
# adapter with it as the reference. Every policy is then compared with the
# SFT policy by `llmlab align-eval` on the held-out instruction tasks: win
# rate under the reward model, exact-match accuracy, chatty answers (rude
# or rambling), KL per answer token to the SFT policy.
# Outputs under runs/align-demo (OUT=...); the table goes to summary.md.
# About 20 minutes on 2 cores.
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

# The SFT demonstrations: the embedded training prompts (same seed and
# split), 30% of the replies rude or rambling.
SLOPPY=${SLOPPY:-30}
$B data gen --kind instruct --seed 1 --sloppy "$SLOPPY" --out "$OUT/data/sft_train.jsonl" --eval "$OUT/data/sft_eval.jsonl" >/dev/null
cmp -s "$OUT/data/sft_eval.jsonl" "$DATA/instruct_eval.jsonl" || {
	echo "data gen made another held-out split than $DATA/instruct_eval.jsonl" >&2
	exit 1
}
SFT=$OUT/sft/adapter

echo "== training (logs in $OUT/logs)"
step sft $B demo --train "$OUT/data/sft_train.jsonl" --out "$OUT/sft"
sft_note="$(grep '^accuracy after' "$OUT/logs/sft.log" | sed 's/^accuracy after: *//')"
step rm $B rm --model demo --data "$DATA/prefs_train.jsonl" --out "$OUT/rm" \
	--steps 60 --batch 8 --lr 1e-3 --eval-frac 0
step rm-score $B score --model "$OUT/rm/final" --data "$DATA/prefs_eval.jsonl" --json
rm_acc=$(tail -n 1 "$OUT/logs/rm-score.log" | grep -o '"accuracy":[0-9.eE+-]*' | cut -d: -f2)

# DPO with β 0.5: at 0.1 the policies ran far from the SFT policy (KL 1.8
# and 2.6 per token), and on the judge's pairs of the policy's own samples
# the greedy answers even got chattier (both answers' likelihoods fall and
# the mass goes elsewhere); at 0.5 both DPO runs stay near and do their job.
DPO_BETA=${DPO_BETA:-0.5}
step dpo $B dpo --model demo --adapter "$SFT" --data "$DATA/prefs_train.jsonl" --out "$OUT/dpo" \
	--steps 40 --batch 8 --lr 5e-4 --beta "$DPO_BETA" --eval-frac 0.05

step ppo $B ppo --model demo --adapter "$SFT" --reward-model "$OUT/rm/final" --data "$DATA/instruct_train.jsonl" \
	--out "$OUT/ppo" --iterations 40 --prompts 8 --lr 1e-4 --kl-coef 0.2

# The checker: 1 for the right number, 0.3 more within 3 of it, and 0.5
# for answering with the number alone (a format reward, as R1-style GRPO
# pairs with its accuracy reward).
step grpo $B grpo --model demo --adapter "$SFT" --data "$OUT/data/arith_train.jsonl" --eval "$OUT/data/arith_eval.jsonl" \
	--reward number --reward '0.3*number:3' --reward '0.5*regex:^\s*-?[0-9]+\s*$' \
	--out "$OUT/grpo" --steps 120 --prompts 4 --group 8 --lr 2e-4
grpo_note="$(grep '^held-out greedy reward after' "$OUT/logs/grpo.log" | sed 's/^held-out greedy reward after: //')"
grpo_terms="$(grep '^held-out greedy reward by term' "$OUT/logs/grpo.log" | sed 's/^[^:]*: //')"

# RLAIF with reference-guided judging. The untuned demo model is no judge
# (P(A) stays within 0.002 of 1/2: pure position bias), so a judge is tuned
# first: a LoRA on the base (with the embeddings, which hold the chat
# markers) trained by sft on `rlaif judge-data`, the prefs_train pairs (and,
# with --off-topic, each chosen answer against another question's) rendered
# as exactly the question the local judge is asked, in both orders,
# answered with the chosen answer's letter. The question carries the
# record's reference answer ("answer"; --reference-field), as MT-Bench
# grades maths: whether an answer is right is beyond a 2M-parameter model,
# whether it matches the reference is a comparison. The policy never sees
# the reference. The judge's agreement with the held-out prefs_eval labels
# is measured by rejected_kind; then the SFT policy answers each training
# prompt twice and the judge, shown the prompt's reference, picks the
# better answer (both orders must agree). The reward model scores the same
# pairs: how often it agrees with the judge.
JUDGE_STEPS=${JUDGE_STEPS:-80}
step judge-data $B rlaif judge-data --prefs "$DATA/prefs_train.jsonl" --rubric "$OUT/data/rubric.txt" --off-topic \
	--reference-field answer --out "$OUT/data/judge_train.jsonl"
step judge $B sft --model demo --data "$OUT/data/judge_train.jsonl" --out "$OUT/judge" \
	--steps "$JUDGE_STEPS" --batch 16 --lr 3e-3 --modules-to-save embed_tokens --eval-frac 0
step judge-eval $B rlaif judge-eval --judge demo --judge-adapter "$OUT/judge/final" --rubric "$OUT/data/rubric.txt" \
	--prefs "$DATA/prefs_eval.jsonl" --reference-field answer --by rejected_kind --tie-margin 0
judge_note="$(grep '^judge agreement' "$OUT/logs/judge-eval.log" | sed 's/^judge agreement with [^:]*: //')"
judge_kinds="$(grep '^  rejected_kind=' "$OUT/logs/judge-eval.log" | sed 's/^  rejected_kind=/  - /')"
step rlaif $B rlaif --model demo --adapter "$SFT" --judge demo --judge-adapter "$OUT/judge/final" --rubric "$OUT/data/rubric.txt" \
	--prompts "$DATA/instruct_train.jsonl" --reference-field answer --out "$OUT/data/rlaif_pairs.jsonl" \
	--limit 200 --samples 4 --temperature 1.0 --max-new 24 --tie-margin 0
rlaif_pairs=$(wc -l <"$OUT/data/rlaif_pairs.jsonl")
rlaif_note="$(grep '^wrote' "$OUT/logs/rlaif.log" | sed 's/ to [^:]*:/:/' || true)"
rm_judge_note="no pairs to score"
if [ "$rlaif_pairs" -gt 0 ]; then
	step rlaif-rm $B score --model "$OUT/rm/final" --data "$OUT/data/rlaif_pairs.jsonl" --json
	rm_judge=$(tail -n 1 "$OUT/logs/rlaif-rm.log" | grep -o '"accuracy":[0-9.eE+-]*' | cut -d: -f2)
	rm_judge_note="the reward model scores the judge's chosen answer higher on $(awk -v a="$rm_judge" 'BEGIN{printf "%.1f%%", 100*a}') of the $rlaif_pairs pairs"
fi
# DPO on a handful of pairs would measure noise, not the judge.
if [ "$rlaif_pairs" -ge 16 ]; then
	step rlaif-dpo $B dpo --model demo --adapter "$SFT" --data "$OUT/data/rlaif_pairs.jsonl" --out "$OUT/rlaif-dpo" \
		--steps 40 --batch 8 --lr 5e-4 --beta "$DPO_BETA" --eval-frac 0
else
	echo "rlaif-dpo    skipped: the judge gave $rlaif_pairs verdicts (16 needed)"
	rlaif_note="$rlaif_note; rlaif-dpo skipped (16 pairs needed)"
fi

echo "== evaluation against the SFT policy ($N held-out tasks)"
table="$OUT/table.txt"
: >"$table"
# evaluate LABEL ADAPTER [DATA]
evaluate() {
	local label=$1 adapter=$2 data=${3:-}
	local args=(--model demo --adapter "$adapter" --ref-adapter "$SFT" --reward-model "$OUT/rm/final" --n "$N" --label "$label")
	if [ -n "$data" ]; then
		args+=(--data "$data")
	fi
	step "eval-$label" $B align-eval "${args[@]}"
	if [ ! -s "$table" ]; then
		grep '^policy' "$OUT/logs/eval-$label.log" >"$table"
	fi
	tail -n 1 "$OUT/logs/eval-$label.log" >>"$table"
}
evaluate sft "$SFT"
evaluate dpo "$OUT/dpo/final"
evaluate ppo "$OUT/ppo/final"
evaluate grpo "$OUT/grpo/final"
if [ -d "$OUT/rlaif-dpo/final" ]; then
	evaluate rlaif-dpo "$OUT/rlaif-dpo/final"
fi
# GRPO's own target: the arithmetic tasks alone.
evaluate sft-arith "$SFT" "$OUT/data/arith_eval.jsonl"
evaluate grpo-arith "$OUT/grpo/final" "$OUT/data/arith_eval.jsonl"

total=$((SECONDS - start))
{
	echo "# align-demo"
	echo
	echo "The SFT policy is a LoRA on the demo model tuned as \`llmlab demo\` tunes one, on the embedded"
	echo "training prompts with ${SLOPPY}% of the replies rude or rambling (the answer inside; data gen --sloppy)."
	echo "Every other policy continues that adapter, which is also the reference of its KL;"
	echo "align-eval compares its greedy answers with the SFT policy's on held-out tasks"
	echo "(the *-arith rows: the $(wc -l <"$OUT/data/arith_eval.jsonl") add/subtract tasks only)."
	echo "win-rate: RM score above the SFT answer's (ties, mostly identical answers, count half);"
	echo "accuracy: exact match (ref-acc: the SFT policy's); chatty: answers with 3 or more words"
	echo "beyond the reference answer's, i.e. rude or rambling (ref-chat: the SFT policy's);"
	echo "kl/tok: mean log p_policy - log p_SFT over the policy's answer tokens; length: answer tokens."
	echo "Targets: DPO, PPO and RLAIF-DPO aim at the reward model's preferences (win-rate), GRPO at"
	echo "the arithmetic checker (its held-out reward below; grpo-arith accuracy), each with a KL"
	echo "leash to the SFT policy."
	echo
	echo '```'
	cat "$table"
	echo '```'
	echo
	echo "- SFT policy: exact match $sft_note on the 200 held-out tasks"
	echo "- GRPO's checker on the $(wc -l <"$OUT/data/arith_eval.jsonl") held-out add/subtract tasks, greedy: $grpo_note; by term: $grpo_terms"
	echo "- reward model: pairwise accuracy $(awk -v a="$rm_acc" 'BEGIN{printf "%.1f%%", 100*a}') on prefs_eval.jsonl (LoRA on the base)"
	echo "- RLAIF judge (the demo base with a LoRA tuned on rlaif judge-data --off-topic --reference-field answer"
	echo "  from prefs_train.jsonl, shown each question's reference answer, asked in both orders; a verdict needs"
	echo "  both to agree): agreement with prefs_eval.jsonl $judge_note; by rejected_kind:"
	echo "$judge_kinds"
	echo "- RLAIF pairs (4 samples of the SFT policy at temperature 1.0 on 200 instruct_train.jsonl prompts, every two"
	echo "  compared by the judge with the prompt's reference): $rlaif_note"
	echo "- reward model vs judge on those pairs: $rm_judge_note"
	echo "- time: ${total}s in all; $(
		IFS=,
		echo "${timings[*]}"
	)"
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
