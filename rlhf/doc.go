// Package rlhf is llmlab's alignment stage: preference losses (DPO and its
// variants, SimPO, ORPO, KTO), the reward model's Bradley–Terry loss, and
// the pieces of PPO and GRPO (KL estimators, GAE, whitening, clipped
// policy and value losses, entropy, the adaptive KL controller, group
// advantages, verifiable rewards).
//
// Every loss is first a pure function over per-sequence (or per-token)
// log-probabilities held in plain float32 slices: it returns the loss and
// writes its gradient with respect to the policy's inputs into caller-given
// slices, computing in float64 inside. That makes the math testable on its
// own: rlhf_test.go checks each function against golden values written by
// PyTorch autograd (tools/golden/rlhf.py) and against central differences.
// autograd.go then wraps each function as one Custom op on the tape whose
// backward scales those gradients by the upstream gradient, so a loss costs
// one pass over B numbers and the model's log-probabilities come from
// SequenceLogProbs (cross-entropy plus a segment sum) or TokenLogProbs.
//
// Reference log-probabilities are plain slices without gradient. When the
// reference is frozen they never change, so CachedReference computes them
// once per example and serves them from memory afterwards.
//
// Conventions follow Hugging Face TRL (DPOTrainer, CPOTrainer, ORPOTrainer,
// KTOTrainer, RewardTrainer, PPOTrainer, GRPOTrainer); each function's
// comment names the formula it implements.
package rlhf
