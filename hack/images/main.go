// Command images builds OCI images of Harbormaster's commands with ko's Go
// builder and writes each as a tarball (`docker load`, `crane push`,
// `skopeo copy docker-archive:...` all read it). No Docker daemon and no
// registry are needed: the base is an empty image (the binaries are static,
// CGO off), run as the non-root user 65532. `make images` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/ko/pkg/build"
)

// images maps each image name to the main package it runs.
func images() map[string]string {
	return map[string]string{
		"harbormaster-webhook":   "github.com/harbormaster-dev/harbormaster/cmd/webhook",
		"harbormaster-scheduler": "github.com/harbormaster-dev/harbormaster/cmd/scheduler",
		"harbormaster":           "github.com/harbormaster-dev/harbormaster/cmd/harbormaster",
	}
}

const nonRootUser = "65532"

func main() {
	root := flag.String("repo-root", "../..", "the Harbormaster module's directory")
	out := flag.String("out", "../../bin/images", "directory the image tarballs are written to")
	registry := flag.String("registry", "harbormaster", "image repository prefix, e.g. registry.example.com/harbormaster")
	tag := flag.String("tag", "dev", "image tag")
	flag.Parse()
	if err := run(context.Background(), *root, *out, *registry, *tag); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, root, out, registry, tag string) error {
	base, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: "linux", Architecture: "amd64",
		Config: v1.Config{User: nonRootUser},
	})
	if err != nil {
		return err
	}
	baseRef, err := name.ParseReference("empty.local/static:latest")
	if err != nil {
		return err
	}
	builder, err := build.NewGo(ctx, root,
		build.WithPlatforms("linux/amd64"),
		build.WithBaseImages(func(context.Context, string) (name.Reference, build.Result, error) {
			return baseRef, base, nil
		}),
		build.WithDisabledSBOM(),
	)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for imageName, pkg := range images() {
		res, err := builder.Build(ctx, pkg)
		if err != nil {
			return fmt.Errorf("%s: %w", pkg, err)
		}
		img, ok := res.(v1.Image)
		if !ok {
			return fmt.Errorf("%s: ko returned an index, not an image", pkg)
		}
		ref, err := name.NewTag(fmt.Sprintf("%s/%s:%s", registry, imageName, tag))
		if err != nil {
			return err
		}
		path := filepath.Join(out, imageName+".tar")
		if err := tarball.WriteToFile(path, ref, img); err != nil {
			return err
		}
		digest, err := verify(path, ref)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		fmt.Printf("%s  %s  %s\n", path, ref, digest)
	}
	return nil
}

// verify reads a written tarball back: it must hold the tagged image, with
// an entrypoint and the non-root user.
func verify(path string, ref name.Tag) (v1.Hash, error) {
	img, err := tarball.ImageFromPath(path, &ref)
	if err != nil {
		return v1.Hash{}, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	if len(cfg.Config.Entrypoint) == 0 {
		return v1.Hash{}, errors.New("image has no entrypoint")
	}
	if cfg.Config.User != nonRootUser {
		return v1.Hash{}, fmt.Errorf("image runs as %q, not %s", cfg.Config.User, nonRootUser)
	}
	return img.Digest()
}
