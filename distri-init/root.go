// Command distri-init is the init process (PID 1) of distri, both in the
// initramfs (find the root, unlock LUKS, switch root) and in the booted
// system (start /ro, then run the system).
//
// As PID 1 it runs the initramfs stage (lib/earlyinit) when
// /etc/initrd-release exists and the booted-system stage (lib/sysinit)
// otherwise. Started as "modprobe" (the kernel's module autoloader:
// /sbin/modprobe in the initramfs, /run/distri/modprobe in the booted
// system) it loads modules (lib/modprobe).
//
// # Kernel command line
//
//	root=UUID=<uuid>        the root file system's UUID (also PARTUUID=, LABEL=, PARTLABEL=,
//	root=/dev/vda2          a /dev path, /dev/mapper/<name>, /dev/disk/by-*/…, or MAJ:MIN)
//	rootfstype=ext4         default: what the superblock says (ext4, squashfs)
//	rootflags=<opts>        mount options of the root
//	ro, rw                  mount the root read-only or read-write (default rw)
//	rd.luks.uuid=<uuid>     unlock this LUKS volume as /dev/mapper/luks-<uuid>
//	rd.luks.name=<uuid>=<name>  … as /dev/mapper/<name>
//	rd.luks.key=<path>      a key file in the initramfs instead of asking on the console
//	rd.timeout=<seconds>    how long to wait for devices (default 30, 0 = forever)
//	init=<path>             the root's init (default /init, else /sbin/init)
//	distri.fuse=<path>      distri-fuse for the booted system (default /distri-fuse)
//
// Without root=, a single rd.luks volume is the root. A root= that turns
// out to be a LUKS volume is unlocked as luks-<uuid>.
//
// # Files in the initramfs
//
//	/init                      this program, statically linked
//	/sbin/modprobe -> /init
//	/etc/initrd-release        marks the initramfs
//	/etc/distri/initramfs.json kernel release and the modules to load at start
//	/lib/modules/<release>/    modules and depmod's index
//	/bin/sh                    optional rescue shell
//
// # Files in the booted system
//
//	/distri-fuse               serves /roimg on /ro
//	/run/distri/modprobe       -> this program, the kernel's modprobe
//	/var/cache/distri/kmod/    module indexes of /lib/modules/<release> (made when
//	                           the kernel package was installed, or scanned)
//	/run/distri/kmod/          the same when /var cannot be written
//	/etc/hostname              the hostname
//	/bin/login, /bin/sh        the console session when there is no systemd
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/earlyinit"
	"distri.dev/distri/lib/initconfig"
	"distri.dev/distri/lib/sysinit"
)

func newRootCmd(stdio cli.Stdio) *cobra.Command {
	root := &cobra.Command{
		Use:   "distri-init",
		Short: "distri's PID 1",
		Long: `distri-init is PID 1 in the distri initramfs and in the booted system.

The kernel starts it; run by hand it offers the stages as commands (they
refuse to run unless they are PID 1, since they mount over /dev and power
off) and a few helpers. "go doc distri.dev/distri/distri-init"
lists every kernel command line parameter it honours.

Examples:
  % distri-init cmdline 'root=UUID=0a3c… rd.luks.uuid=ba05… ro'
  % distri-init modprobe dm_crypt`,
	}
	root.AddCommand(
		newStageCmd("initramfs", "find, unlock and mount the root, then switch to it", func(ctx context.Context) error {
			return earlyinit.Run(ctx, earlyinit.Options{})
		}),
		newStageCmd("system", "bring up the booted system: /ro, hostname, systemd or a console login", func(ctx context.Context) error {
			return sysinit.Run(ctx, sysinit.Options{})
		}),
		newCmdlineCmd(stdio),
		newModprobeCmd(stdio),
		newEntrypointCmd(stdio),
	)
	return root
}

func newStageCmd(name, short string, run func(context.Context) error) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context())
		},
	}
}

func newCmdlineCmd(stdio cli.Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "cmdline [CMDLINE]",
		Short: "show how a kernel command line (default /proc/cmdline) is understood",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var s string
			if len(args) == 1 {
				s = args[0]
			} else {
				b, err := os.ReadFile("/proc/cmdline")
				if err != nil {
					return err
				}
				s = string(b)
			}
			c, err := initconfig.ParseCmdline(s)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdio.Out, c)
			timeout := "forever"
			if d := c.WaitTimeout(); d >= 0 {
				timeout = d.Round(time.Millisecond).String()
			}
			fmt.Fprintf(stdio.Err, "root %q, %d LUKS volume(s), wait %s\n", c.Root.String(), len(c.LUKS), timeout)
			return nil
		},
	}
}

// runPID1 runs the stage the system is in and never returns.
func runPID1() {
	ctx := context.Background()
	var err error
	if _, serr := os.Stat("/" + initconfig.ReleaseFile); serr == nil {
		err = earlyinit.Run(ctx, earlyinit.Options{})
	} else {
		err = sysinit.Run(ctx, sysinit.Options{})
	}
	// PID 1 must not exit: the kernel would panic.
	fmt.Fprintf(os.Stderr, "distri-init: %v\n", err)
	select {}
}
