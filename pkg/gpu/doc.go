// Package gpu is the pure core of Harbormaster's GPU-aware scheduling: the
// resource model (what a pod asks of a node's GPUs), per-card bookkeeping
// (which share of which card each placed pod holds), fit checks, the
// fragmentation measure of Weng et al. and the placement strategies that
// the HarbormasterGPU scheduler plugin and the trace simulator share.
//
// Nothing here talks to the API server or keeps global state; every
// function is a function of its arguments, except WorkloadMix, an object
// the caller owns that learns the mix of GPU demands from observed pods.
//
// # Resource model
//
//   - A whole-GPU pod requests the extended resource nvidia.com/gpu (k cards,
//     each used exclusively).
//   - A shared-GPU pod asks for a fraction of ONE card with the annotation
//     harbormaster.io/gpu-milli: "250" (thousandths of a card, 1-999) and
//     requests no nvidia.com/gpu. Several shared pods may hold the same card
//     while their shares sum to at most 1000.
//   - A node's cards are its allocatable nvidia.com/gpu, numbered from 0;
//     its model is the label nvidia.com/gpu.product that NVIDIA GPU feature
//     discovery sets.
//   - A pod restricts acceptable models with the annotation
//     harbormaster.io/gpu-models: "A100,V100" (comma-separated label values,
//     compared case-insensitively), a nodeSelector on nvidia.com/gpu.product,
//     or required node affinity In-terms on that label.
//   - The cards a placed pod holds are written to the pod as
//     harbormaster.io/gpu-cards: "0,1" (whole cards 0 and 1) or "2:250"
//     (250 thousandths of card 2). That annotation is the contract with the
//     device plugin, and the source of truth for bookkeeping.
//
// # Fragmentation
//
// Fragmentation follows Qizhen Weng et al., "Beware of Fragmentation:
// Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent",
// USENIX ATC 2023: a node's free GPU capacity is a fragment with respect to
// a kind of pod if pods of that kind could not use it, even filling the
// node with them (so the CPU the free cards need counts), and the node's
// fragmentation is the expectation of that over the mix of pods the
// cluster receives. The FGD strategy places a pod where that expectation
// grows least.
package gpu
