package pb

// The generated *.pb.go files are checked in. To regenerate them, install
// protoc and protoc-gen-go (the version in go.mod):
//
//	GOBIN=/tmp/gobin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	PATH=/tmp/gobin:$PATH go generate ./lib/pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative build.proto meta.proto index.proto
