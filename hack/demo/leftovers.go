package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// envtest starts etcd and kube-apiserver without tying them to the demo
// (no Pdeathsig), so a demo killed with SIGKILL leaves them running. The
// demo records them in the state dir and the next run stops them.

const leftoversFile = "control-plane.pids"

// recordControlPlane writes the demo's direct child processes (etcd,
// kube-apiserver: envtest runs them as children) with their start times,
// which tell a leftover from a later process that reused its pid.
func recordControlPlane(path string) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, start, err := procStat(pid)
		if err != nil || ppid != os.Getpid() {
			continue
		}
		fmt.Fprintf(&b, "%d %d\n", pid, start)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// stopLeftovers kills the processes a previous demo recorded that still
// run with the recorded start time, and removes the record.
func stopLeftovers(path string) (stopped int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.Remove(path) }()
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		var pid int
		var start uint64
		if _, err := fmt.Sscanf(scanner.Text(), "%d %d", &pid, &start); err != nil {
			continue
		}
		if _, now, err := procStat(pid); err != nil || now != start {
			continue // gone, or the pid now belongs to another process
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			stopped++
		}
	}
	return stopped, scanner.Err()
}

// procStat reads the parent pid and the start time (clock ticks since boot)
// of a process from /proc/<pid>/stat.
func procStat(pid int) (ppid int, start uint64, err error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'. Then: state ppid ... starttime is the 20th after it.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	if ppid, err = strconv.Atoi(fields[1]); err != nil {
		return 0, 0, err
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	return ppid, start, err
}
