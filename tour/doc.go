// Package tour holds the end-to-end test of the distri README's "Getting
// started" and "Cool things to try": it builds the base repository as the
// main job does (distri-build batch over the recipes in pkgs/, this suite
// packed as the package distri, distri-mirror index with a fresh key),
// makes a disk image with distri-mkimage disk --repo, boots it with OVMF
// in QEMU (TCG) and walks through the tour on the serial console. See
// docs/image.md ("The tour") for what it checks and what it costs.
package tour
