package mountinfo

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	const text = `22 1 0:21 / /proc rw,nosuid - proc proc rw
36 35 98:0 /mnt1 /mnt\040two rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue
40 22 0:39 / /ro ro,nodev,relatime - fuse.distri /roimg ro,user_id=0
short line
`
	want := []Mount{
		{Point: "/proc", FSType: "proc"},
		{Point: "/mnt two", FSType: "ext3"},
		{Point: "/ro", FSType: "fuse.distri"},
	}
	if got := Parse(text); !reflect.DeepEqual(got, want) {
		t.Errorf("Parse = %+v, want %+v", got, want)
	}
}

func TestRead(t *testing.T) {
	ms, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Point == "/" {
			return
		}
	}
	t.Errorf("Read = %+v: no mount at /", ms)
}
