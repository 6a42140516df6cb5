package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImagesRun builds every image as `make images` does, then reads each
// tarball back as a registry would receive it: the tag, the platform, the
// non-root user, and an entrypoint that is a static binary in the image's
// filesystem which runs (its --help) on this machine.
func TestImagesRun(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := run(t.Context(), root, out, "registry.example.com/harbormaster", "test"); err != nil {
		t.Fatal(err)
	}
	wantHelp := map[string]string{
		"harbormaster-webhook":   "-cert-rotation",
		"harbormaster-scheduler": "kube-scheduler",
		"harbormaster":           "explain",
	}
	for imageName := range images() {
		t.Run(imageName, func(t *testing.T) {
			ref, err := name.NewTag("registry.example.com/harbormaster/" + imageName + ":test")
			if err != nil {
				t.Fatal(err)
			}
			img, err := tarball.ImageFromPath(filepath.Join(out, imageName+".tar"), &ref)
			if err != nil {
				t.Fatalf("the tarball holds %s: %v", ref, err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.OS != "linux" || cfg.Architecture != "amd64" || cfg.Config.User != nonRootUser {
				t.Fatalf("platform %s/%s user %q", cfg.OS, cfg.Architecture, cfg.Config.User)
			}
			entrypoint := cfg.Config.Entrypoint[0]
			binary := extract(t, mutate.Extract(img), entrypoint)
			path := filepath.Join(t.TempDir(), imageName)
			if err := os.WriteFile(path, binary, 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := elf.Open(path)
			if err != nil {
				t.Fatalf("entrypoint %s is not an ELF binary: %v", entrypoint, err)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Fatalf("entrypoint %s is dynamically linked; the base image has no libc", entrypoint)
				}
			}
			_ = f.Close()
			help, _ := exec.CommandContext(t.Context(), path, "--help").CombinedOutput()
			if !strings.Contains(string(help), wantHelp[imageName]) {
				t.Fatalf("%s --help does not mention %q:\n%s", entrypoint, wantHelp[imageName], help)
			}
		})
	}
}

// extract returns the contents of file path from an image's flattened
// filesystem.
func extract(t *testing.T, fs io.ReadCloser, path string) []byte {
	t.Helper()
	defer func() { _ = fs.Close() }()
	r := tar.NewReader(fs)
	want := strings.TrimPrefix(path, "/")
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s is not in the image", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "/") != want {
			continue
		}
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, r); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
}
