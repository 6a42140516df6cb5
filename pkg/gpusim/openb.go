// Package gpusim replays a GPU cluster trace (the openb trace of Weng et
// al., USENIX ATC 2023) through the real scheduling framework with the
// HarbormasterGPU plugin, once per placement strategy, and measures how
// much of the cluster's GPU capacity gets allocated. cmd/simulate is its
// command line; docs/gpu.md describes the protocol.
package gpusim

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// DataDirEnv overrides where the trace is read from.
const DataDirEnv = "HARBORMASTER_OPENB_DIR"

// Trace file names inside the data directory.
const (
	NodeListFile = "openb_node_list_gpu_node.csv"
	// PodListPrefix + name + ".csv" is a pod list, e.g. "default".
	PodListPrefix = "openb_pod_list_"
)

// DataDir is $HARBORMASTER_OPENB_DIR, else ../shared/data/openb beside
// the repository holding the working directory.
func DataDir() (string, error) {
	if d := os.Getenv(DataDirEnv); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "data", "openb"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory; set " + DataDirEnv)
		}
		dir = parent
	}
}

// NodeRow is one node of the trace.
type NodeRow struct {
	Name      string
	MilliCPU  int64
	MemoryMiB int64
	GPUs      int
	Model     string
}

// PodRow is one pod of the trace.
type PodRow struct {
	Name      string
	MilliCPU  int64
	MemoryMiB int64
	// NumGPU is the number of cards; GPUMilli the share of each (1000 for
	// whole cards, less for a single shared card).
	NumGPU   int
	GPUMilli int64
	// Models are acceptable GPU models; nil accepts any.
	Models   []string
	Creation int64
}

// TotalGPUMilli is the pod's total GPU request in thousandths of a card.
func (p PodRow) TotalGPUMilli() int64 { return int64(p.NumGPU) * p.GPUMilli }

// LoadNodes reads a node list (sn,cpu_milli,memory_mib,gpu,model).
func LoadNodes(path string) ([]NodeRow, error) {
	var out []NodeRow
	err := readCSV(path, []string{"sn", "cpu_milli", "memory_mib", "gpu", "model"}, func(rec map[string]string) error {
		n := NodeRow{Name: rec["sn"], Model: rec["model"]}
		var err error
		if n.MilliCPU, err = strconv.ParseInt(rec["cpu_milli"], 10, 64); err != nil {
			return err
		}
		if n.MemoryMiB, err = strconv.ParseInt(rec["memory_mib"], 10, 64); err != nil {
			return err
		}
		if n.GPUs, err = strconv.Atoi(rec["gpu"]); err != nil {
			return err
		}
		out = append(out, n)
		return nil
	})
	return out, err
}

// LoadPods reads a pod list and returns it in creation order (stable for
// equal times).
func LoadPods(path string) ([]PodRow, error) {
	var out []PodRow
	// Some lists (multigpu20) have neither gpu_spec nor creation_time:
	// any model is accepted and the file's order is the arrival order.
	err := readCSV(path, []string{"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec?", "creation_time?"}, func(rec map[string]string) error {
		p := PodRow{Name: rec["name"]}
		var err error
		if p.MilliCPU, err = strconv.ParseInt(rec["cpu_milli"], 10, 64); err != nil {
			return err
		}
		if p.MemoryMiB, err = strconv.ParseInt(rec["memory_mib"], 10, 64); err != nil {
			return err
		}
		if p.NumGPU, err = strconv.Atoi(rec["num_gpu"]); err != nil {
			return err
		}
		if p.GPUMilli, err = strconv.ParseInt(rec["gpu_milli"], 10, 64); err != nil {
			return err
		}
		if c := rec["creation_time"]; c != "" {
			if p.Creation, err = strconv.ParseInt(c, 10, 64); err != nil {
				return err
			}
		}
		if p.NumGPU > 1 && p.GPUMilli != 1000 || p.NumGPU == 1 && (p.GPUMilli < 1 || p.GPUMilli > 1000) {
			return fmt.Errorf("pod %s: %d GPUs of %d milli is not a whole-card or single-share request", p.Name, p.NumGPU, p.GPUMilli)
		}
		if spec := strings.TrimSpace(rec["gpu_spec"]); spec != "" {
			p.Models = strings.Split(spec, "|")
		}
		out = append(out, p)
		return nil
	})
	slices.SortStableFunc(out, func(a, b PodRow) int { return int(min(max(a.Creation-b.Creation, -1), 1)) })
	return out, err
}

// readCSV calls row with each record's columns by name; a column whose
// name ends in "?" is optional and absent from the map when missing.
func readCSV(path string, columns []string, row func(map[string]string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening the trace (set %s to its directory): %w", DataDirEnv, err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	index := map[string]int{}
	for i, h := range header {
		index[strings.TrimSpace(h)] = i
	}
	var present []string
	for _, c := range columns {
		name, optional := strings.CutSuffix(c, "?")
		if _, ok := index[name]; ok {
			present = append(present, name)
		} else if !optional {
			return fmt.Errorf("%s: no column %q", path, name)
		}
	}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		m := make(map[string]string, len(present))
		for _, c := range present {
			m[c] = rec[index[c]]
		}
		if err := row(m); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
	}
}

// Inflate appends pods sampled uniformly from pods (seeded) until the total
// GPU request would exceed factor times capacityMilli, as the paper's
// protocol does to push the cluster past saturation. The first pod that
// would exceed it ends the workload.
func Inflate(pods []PodRow, capacityMilli int64, factor float64, rng interface{ IntN(int) int }) []PodRow {
	limit := int64(float64(capacityMilli) * factor)
	var total int64
	out := make([]PodRow, 0, len(pods)*2)
	for _, p := range pods {
		if total+p.TotalGPUMilli() > limit {
			return out
		}
		total += p.TotalGPUMilli()
		out = append(out, p)
	}
	if len(pods) == 0 {
		return out
	}
	for i := 0; ; i++ {
		p := pods[rng.IntN(len(pods))]
		if total+p.TotalGPUMilli() > limit {
			return out
		}
		total += p.TotalGPUMilli()
		p.Name = fmt.Sprintf("%s-x%d", p.Name, i)
		out = append(out, p)
	}
}
