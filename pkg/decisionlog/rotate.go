package decisionlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// DefaultMaxBytes is the rotation size when FileOptions leaves it 0.
const DefaultMaxBytes = 100 << 20

// RotatingFile is an append-only file that rotates by size: when a write
// would take it past maxBytes, path becomes path.1, path.1 becomes path.2
// and so on, and path.<backups> is dropped. A single write larger than
// maxBytes still goes whole into a fresh file: lines are never split.
// It is safe for concurrent use.
type RotatingFile struct {
	path     string
	maxBytes int64
	backups  int

	mu     sync.Mutex
	f      *os.File
	size   int64
	closed bool
}

// ErrClosed is returned by writes to a closed RotatingFile.
var ErrClosed = errors.New("decision log file is closed")

// OpenRotatingFile opens (creating or appending to) path.
func OpenRotatingFile(path string, maxBytes int64, backups int) (*RotatingFile, error) {
	if path == "" {
		return nil, errors.New("decision log file: path is empty")
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	r := &RotatingFile{path: path, maxBytes: maxBytes, backups: max(backups, 0)}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *RotatingFile) open() error {
	// 0600: lines name users and objects.
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("decision log file: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("decision log file: %w", err)
	}
	r.f, r.size = f, info.Size()
	return nil
}

// Write appends p, rotating first if p would not fit.
func (r *RotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, ErrClosed
	}
	if r.f == nil {
		// A previous rotation failed to reopen: retry, so that a transient
		// error (full disk) does not silence the log for good.
		if err := r.open(); err != nil {
			return 0, err
		}
	}
	if r.size > 0 && r.size+int64(len(p)) > r.maxBytes {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// rotate shifts the backups and starts a new file. Called with mu held.
func (r *RotatingFile) rotate() error {
	if err := r.f.Close(); err != nil {
		r.f = nil
		return fmt.Errorf("decision log file: closing for rotation: %w", err)
	}
	r.f = nil
	if r.backups == 0 {
		if err := os.Remove(r.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("decision log file: %w", err)
		}
	} else {
		// Renaming onto path.<backups> drops the oldest backup.
		for i := r.backups - 1; i >= 1; i-- {
			err := os.Rename(r.backupName(i), r.backupName(i+1))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("decision log file: %w", err)
			}
		}
		if err := os.Rename(r.path, r.backupName(1)); err != nil {
			return fmt.Errorf("decision log file: %w", err)
		}
	}
	return r.open()
}

func (r *RotatingFile) backupName(i int) string { return fmt.Sprintf("%s.%d", r.path, i) }

// Close closes the file; later writes fail with ErrClosed.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
