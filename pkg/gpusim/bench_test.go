package gpusim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/harbormaster-dev/harbormaster/pkg/gpu"
	"github.com/harbormaster-dev/harbormaster/pkg/plugins/apis/config"
)

// BenchmarkPlacement times one scheduling cycle (PreFilter, Filter on all
// 1,213 openb nodes, PreScore, Score, host selection, Reserve) on the
// cluster half full with the default trace. The measured pods are not
// committed, so every iteration sees the same cluster.
func BenchmarkPlacement(b *testing.B) {
	dir := openbDir(b)
	nodes, err := LoadNodes(filepath.Join(dir, NodeListFile))
	if err != nil {
		b.Fatal(err)
	}
	pods, err := LoadPods(filepath.Join(dir, PodListPrefix+"default.csv"))
	if err != nil {
		b.Fatal(err)
	}
	half := len(pods) / 2
	for _, policy := range []Policy{"FGD", "BestFit", "Packing", "Random"} {
		b.Run(string(policy), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			mix := gpu.NewWorkloadMix(int(config.DefaultWorkloadWindow))
			snap := newSnapshot(nodes)
			args := &config.GPUArgs{ScoringStrategy: &config.GPUScoringStrategy{Type: config.GPUStrategyType(policy)}}
			fw, err := newFramework(ctx, Run{Policy: policy, Seed: 1, Parallelism: 2}, args, mix, snap)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = fw.Close() }()
			rng := rand.New(rand.NewPCG(1, 1))
			for i, row := range pods[:half] {
				pod := podFor(row, i)
				d, _ := gpu.DemandOf(pod)
				mix.Observe(d)
				if node, err := scheduleOne(ctx, fw, snap, pod, rng); err != nil {
					b.Fatal(err)
				} else if node != "" {
					pod.Spec.NodeName = node
					snap.byName[node].AddPod(pod)
				}
			}
			i := 0
			for b.Loop() {
				pod := podFor(pods[half+i%(len(pods)-half)], half+i)
				pod.UID = types.UID(fmt.Sprintf("bench-%d", i))
				if _, err := scheduleOne(ctx, fw, snap, pod, rng); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
