// Command kubelet-peer plays the kubelet side of the device-plugin API v1beta1, using the
// generated client and server of k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1. It exists so
// that the Python device plugin is tested against upstream's own wire code.
//
// It serves Registration on <dir>/kubelet.sock. When a plugin registers, it dials the plugin's
// endpoint (relative to <dir>, as kubelet does), asks for the plugin options and opens
// ListAndWatch. Every observation is printed to stdout as one JSON object per line:
//
//	{"event":"ready","socket":"…"}
//	{"event":"registered","request":{…RegisterRequest…}}
//	{"event":"options","options":{…DevicePluginOptions…}}
//	{"event":"devices","devices":[{"ID":"…","health":"Healthy","topology":…}, …]}
//	{"event":"stream-closed","error":"…"}
//	{"event":"result","op":"allocate","response":{…AllocateResponse…}}
//	{"event":"error","op":"allocate","code":"NotFound","message":"…"}
//
// Commands arrive on stdin, one JSON object per line:
//
//	{"op":"preferred","available":["a","b"],"must":["a"],"size":1}
//	{"op":"allocate","containers":[["id-0"],["id-1","id-2"]]}
//	{"op":"prestart","devices":["id-0"]}
//	{"op":"restart"}   a kubelet restart: stop serving, delete every socket in the directory
//	                   (kubelet wipes the plugin sockets too), serve kubelet.sock again
//	{"op":"quit"}
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const rpcTimeout = 10 * time.Second

// output serialises JSON lines from concurrent goroutines.
type output struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (o *output) emit(fields map[string]any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enc.Encode(fields); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet-peer: cannot write:", err)
	}
}

// message renders a protobuf message with its .proto field names, so the Python test checks
// that names and numbers agree with upstream, not just with itself.
func message(m proto.Message) json.RawMessage {
	data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return json.RawMessage(`null`)
	}
	return json.RawMessage(data)
}

// peer is the kubelet stand-in: one Registration server, at most one plugin connection.
type peer struct {
	pluginapi.UnimplementedRegistrationServer
	dir      string
	resource string
	out      *output

	mu     sync.Mutex
	server *grpc.Server
	client pluginapi.DevicePluginClient
	conn   *grpc.ClientConn
	cancel context.CancelFunc
}

func (p *peer) socket() string { return filepath.Join(p.dir, "kubelet.sock") }

// Register is what kubelet's device manager receives from a plugin.
func (p *peer) Register(_ context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	p.out.emit(map[string]any{"event": "registered", "request": message(req)})
	if req.GetVersion() != pluginapi.Version {
		return nil, fmt.Errorf("unsupported API version %q (want %q)", req.GetVersion(), pluginapi.Version)
	}
	if p.resource != "" && req.GetResourceName() != p.resource {
		return nil, fmt.Errorf("unexpected resource name %q (want %q)", req.GetResourceName(), p.resource)
	}
	if strings.Contains(req.GetEndpoint(), "/") {
		return nil, fmt.Errorf("endpoint %q must be a file name inside %s", req.GetEndpoint(), p.dir)
	}
	go p.connect(req.GetEndpoint())
	return &pluginapi.Empty{}, nil
}

// connect dials the plugin's socket and follows its ListAndWatch stream.
func (p *peer) connect(endpoint string) {
	target := "unix://" + filepath.Join(p.dir, endpoint)
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		p.out.emit(map[string]any{"event": "error", "op": "dial", "message": err.Error()})
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	client := pluginapi.NewDevicePluginClient(conn)
	p.mu.Lock()
	if p.cancel != nil {
		p.cancel()
		_ = p.conn.Close()
	}
	p.client, p.conn, p.cancel = client, conn, cancel
	p.mu.Unlock()
	p.options(ctx, client)
	p.watch(ctx, client)
}

func (p *peer) options(ctx context.Context, client pluginapi.DevicePluginClient) {
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	opts, err := client.GetDevicePluginOptions(cctx, &pluginapi.Empty{})
	if err != nil {
		p.fail("options", err)
		return
	}
	p.out.emit(map[string]any{"event": "options", "options": message(opts)})
}

func (p *peer) watch(ctx context.Context, client pluginapi.DevicePluginClient) {
	stream, err := client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		p.fail("list-and-watch", err)
		return
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			p.out.emit(map[string]any{"event": "stream-closed", "error": err.Error()})
			return
		}
		devices := make([]json.RawMessage, 0, len(resp.GetDevices()))
		for _, d := range resp.GetDevices() {
			devices = append(devices, message(d))
		}
		p.out.emit(map[string]any{"event": "devices", "devices": devices})
	}
}

func (p *peer) fail(op string, err error) {
	st, _ := status.FromError(err)
	p.out.emit(map[string]any{
		"event": "error", "op": op, "code": st.Code().String(), "message": st.Message(),
	})
}

// serve (re)creates kubelet.sock and serves Registration on it.
func (p *peer) serve() error {
	if err := os.Remove(p.socket()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	lis, err := net.Listen("unix", p.socket())
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(server, p)
	p.mu.Lock()
	p.server = server
	p.mu.Unlock()
	go func() { _ = server.Serve(lis) }()
	p.out.emit(map[string]any{"event": "ready", "socket": p.socket()})
	return nil
}

func (p *peer) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.server != nil {
		p.server.Stop()
	}
	if p.cancel != nil {
		p.cancel()
		_ = p.conn.Close()
		p.client, p.conn, p.cancel = nil, nil, nil
	}
}

func (p *peer) pluginClient() (pluginapi.DevicePluginClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		return nil, errors.New("no plugin has registered yet")
	}
	return p.client, nil
}

// command is one line of stdin.
type command struct {
	Op         string     `json:"op"`
	Available  []string   `json:"available"`
	Must       []string   `json:"must"`
	Size       int32      `json:"size"`
	Containers [][]string `json:"containers"`
	Devices    []string   `json:"devices"`
}

func (p *peer) run(cmd command) (proto.Message, error) {
	client, err := p.pluginClient()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	switch cmd.Op {
	case "preferred":
		req := &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
			AvailableDeviceIDs: cmd.Available, MustIncludeDeviceIDs: cmd.Must, AllocationSize: cmd.Size,
		}}}
		return client.GetPreferredAllocation(ctx, req)
	case "allocate":
		req := &pluginapi.AllocateRequest{}
		for _, ids := range cmd.Containers {
			req.ContainerRequests = append(req.ContainerRequests, &pluginapi.ContainerAllocateRequest{DevicesIds: ids})
		}
		return client.Allocate(ctx, req)
	case "prestart":
		return client.PreStartContainer(ctx, &pluginapi.PreStartContainerRequest{DevicesIds: cmd.Devices})
	}
	return nil, fmt.Errorf("unknown op %q", cmd.Op)
}

func (p *peer) handle(line string) bool {
	var cmd command
	if err := json.Unmarshal([]byte(line), &cmd); err != nil {
		p.out.emit(map[string]any{"event": "error", "op": "parse", "message": err.Error()})
		return true
	}
	switch cmd.Op {
	case "quit":
		return false
	case "restart":
		p.stop()
		sockets, _ := filepath.Glob(filepath.Join(p.dir, "*.sock"))
		for _, path := range sockets {
			_ = os.Remove(path)
		}
		if err := p.serve(); err != nil {
			p.out.emit(map[string]any{"event": "error", "op": "restart", "message": err.Error()})
		}
		return true
	}
	resp, err := p.run(cmd)
	if err != nil {
		p.fail(cmd.Op, err)
		return true
	}
	p.out.emit(map[string]any{"event": "result", "op": cmd.Op, "response": message(resp)})
	return true
}

func main() {
	dir := flag.String("dir", pluginapi.DevicePluginPath, "device-plugin socket directory")
	resource := flag.String("resource", "", "expected resource name (empty: accept any)")
	flag.Parse()
	p := &peer{dir: *dir, resource: *resource, out: &output{enc: json.NewEncoder(os.Stdout)}}
	if err := p.serve(); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet-peer:", err)
		os.Exit(1)
	}
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		if line := strings.TrimSpace(scanner.Text()); line != "" && !p.handle(line) {
			break
		}
	}
	p.stop()
	_ = os.Remove(p.socket())
}
