package decisionlog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []string
	for _, l := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		if len(l) > 0 {
			out = append(out, string(l))
		}
	}
	return out
}

func TestRotation(t *testing.T) {
	tests := []struct {
		name      string
		maxBytes  int64
		backups   int
		lines     int
		wantFiles []string // relative to the log path; "" is the log itself
		// wantLast are the lines (by number) of each file, in wantFiles order.
		wantLast [][]int
	}{
		{
			// 10-byte lines, 3 per file: lines 0..9 leave 9 | 6 7 8 | 3 4 5;
			// 0 1 2 are dropped with the third backup that is not kept.
			name: "backups capped", maxBytes: 30, backups: 2, lines: 10,
			wantFiles: []string{"", ".1", ".2"},
			wantLast:  [][]int{{9}, {6, 7, 8}, {3, 4, 5}},
		},
		{
			name: "no backups", maxBytes: 30, backups: 0, lines: 7,
			wantFiles: []string{""},
			wantLast:  [][]int{{6}},
		},
		{
			name: "fits, no rotation", maxBytes: 1000, backups: 3, lines: 5,
			wantFiles: []string{""},
			wantLast:  [][]int{{0, 1, 2, 3, 4}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "d.log")
			f, err := OpenRotatingFile(path, tt.maxBytes, tt.backups)
			require.NoError(t, err)
			for i := range tt.lines {
				_, err := fmt.Fprintf(f, "line %04d\n", i) // 10 bytes
				require.NoError(t, err)
			}
			require.NoError(t, f.Close())

			files, err := filepath.Glob(path + "*")
			require.NoError(t, err)
			var want []string
			for _, suffix := range tt.wantFiles {
				want = append(want, path+suffix)
			}
			require.ElementsMatch(t, want, files)
			for i, suffix := range tt.wantFiles {
				var wantLines []string
				for _, n := range tt.wantLast[i] {
					wantLines = append(wantLines, fmt.Sprintf("line %04d", n))
				}
				require.Equal(t, wantLines, readLines(t, path+suffix), "file %q", path+suffix)
				info, err := os.Stat(path + suffix)
				require.NoError(t, err)
				require.LessOrEqual(t, info.Size(), tt.maxBytes)
				require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
			}
		})
	}
}

func TestRotationKeepsOversizedLineWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.log")
	f, err := OpenRotatingFile(path, 16, 1)
	require.NoError(t, err)
	_, err = f.Write([]byte("short\n"))
	require.NoError(t, err)
	big := bytes.Repeat([]byte("x"), 40)
	_, err = f.Write(append(big, '\n'))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Equal(t, []string{string(big)}, readLines(t, path))
	require.Equal(t, []string{"short"}, readLines(t, path+".1"))
}

func TestRotationCountsExistingSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.log")
	require.NoError(t, os.WriteFile(path, bytes.Repeat([]byte("y"), 25), 0o600))
	f, err := OpenRotatingFile(path, 30, 1)
	require.NoError(t, err)
	_, err = f.Write([]byte("line 0001\n"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Equal(t, []string{"line 0001"}, readLines(t, path), "a restart appends, then rotates at the limit")
}

func TestRotatingFileClosed(t *testing.T) {
	f, err := OpenRotatingFile(filepath.Join(t.TempDir(), "d.log"), 0, 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, f.Close(), "idempotent")
	_, err = f.Write([]byte("x\n"))
	require.ErrorIs(t, err, ErrClosed)

	_, err = OpenRotatingFile("", 0, 0)
	require.ErrorContains(t, err, "path is empty")
	_, err = OpenRotatingFile(filepath.Join(t.TempDir(), "missing", "d.log"), 0, 0)
	require.ErrorContains(t, err, "missing/d.log")
}

func TestLoggerRotatesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	l, err := New(Options{File: &FileOptions{Path: path, MaxBytes: 1024, MaxBackups: 3}})
	require.NoError(t, err)
	for range 100 {
		l.Log(Entry{Result: ResultAllow, Latency: time.Millisecond})
	}
	require.NoError(t, l.Close())
	files, err := filepath.Glob(path + "*")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{path, path + ".1", path + ".2", path + ".3"}, files)
}
