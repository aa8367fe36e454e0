package luks_test

import (
	"fmt"
	"log"
	"os"

	"distri.dev/distri/lib/luks"
)

// Encrypt an ext4 image into a LUKS2 container, as an image builder does.
func ExampleEncrypt() {
	src, err := os.Open("root.ext4")
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create("root.luks")
	if err != nil {
		log.Fatal(err)
	}
	v, err := luks.Encrypt(dst, src, []byte("passphrase"), luks.FormatOptions{
		KDF:   luks.KDF{Type: "argon2id", Memory: 64 << 10}, // the unlocking VM has little RAM
		Label: "root",
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("rd.luks.uuid=" + v.Header.UUID)
}

// Unlock a volume and compute its dm-crypt table, as an initramfs does.
func ExampleUnlock() {
	dev, err := os.Open("/dev/vda2")
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	h, err := luks.ReadHeader(dev)
	if err != nil {
		log.Fatal(err)
	}
	// Retry on luks.ErrWrongPassphrase without reading the header again.
	v, err := h.Unlock(dev, []byte("passphrase"))
	if err != nil {
		log.Fatal(err)
	}
	size, err := dev.Seek(0, 2)
	if err != nil {
		log.Fatal(err)
	}
	dm, err := v.DMCrypt(size)
	if err != nil {
		log.Fatal(err)
	}
	// The table line to load with DM_TABLE_LOAD, e.g.
	// "0 2064384 crypt aes-xts-plain64 <key> 0 254:2 32768".
	table := fmt.Sprintf("0 %d crypt %s", dm.Length, dm.Params("254:2"))
	_ = table
}
