#!/usr/bin/env bash
# Brings up a single-node Kubernetes cluster on 127.0.0.1 for this project (docs/local-cluster.md): etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet (built from Go modules into bin/),
# containerd + runc from apt with their own config, socket, root and state, and a docker-registry on
# 127.0.0.1:$REGISTRY_PORT that containerd pulls from over plain HTTP. Loopback only: pods must use
# hostNetwork, the service range is 127.0.0.0/24, the CNI config has only the loopback plugin and
# there is no kube-proxy. Everything lives under $LOCAL_CLUSTER_DIR (default
# /var/tmp/dwbackup-local-cluster); the admin kubeconfig is $LOCAL_CLUSTER_DIR/kubeconfig.
# Re-running it is safe: running components are kept, missing ones started. Undo with down.sh.
set -euo pipefail
# shellcheck source=hack/local-cluster/lib.sh
source "$(dirname "$0")/lib.sh"

PACKAGES=(containerd runc containernetworking-plugins docker-registry iptables openssl curl)
K8S_BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

preflight() {
  require_root
  [ "$(uname -m)" = x86_64 ] || die "only linux-amd64 is supported (bin/k8s/$K8S_VERSION-linux-amd64)"
  getent hosts "$NODE_NAME" | grep -q '^127\.' ||
    die "the host name $NODE_NAME must resolve to 127.0.0.1 (add '127.0.0.1 $NODE_NAME' to /etc/hosts): the API server reaches the kubelet by host name"
  mkdir -p "$LOCAL_CLUSTER_DIR" "$PIDS" "$LOGS" "$SAVED"
}

# Kubernetes binaries take minutes on a cold Go cache: build them in the background while the rest
# is prepared, and wait for them just before they are needed.
start_binary_build() {
  local missing=() b
  for b in "${K8S_BINARIES[@]}"; do [ -x "$K8S_BIN/$b" ] || missing+=("$b"); done
  BUILD_PID=""
  [ ${#missing[@]} -gt 0 ] || return 0
  log "building ${missing[*]} into $K8S_BIN in the background (log: $LOGS/build.log)"
  "$REPO_ROOT/hack/k8s/build.sh" "$K8S_BIN" "${missing[@]}" >"$LOGS/build.log" 2>&1 &
  BUILD_PID=$!
}

wait_binary_build() {
  [ -n "$BUILD_PID" ] || return 0
  wait "$BUILD_PID" || die "building the Kubernetes binaries failed; see $LOGS/build.log"
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  log "installing ${missing[*]} with apt"
  apt-get update -qq
  # The packages' own services are not wanted: this cluster runs its own containerd and registry.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$LOGS/apt.log"
  local svc
  for svc in containerd docker-registry; do
    if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then
      log "note: the system $svc service is running; this cluster does not use it"
    fi
  done
}

# issue NAME CN ORG EXTKEYUSAGE [SANS]: a key and a certificate signed by the cluster CA.
issue() {
  local n=$1 cn=$2 org=$3 eku=$4 sans=${5:-}
  [ -s "$PKI/$n.crt" ] && return 0
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$PKI/$n.key" \
    -subj "/CN=$cn${org:+/O=$org}" -out "$PKI/$n.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } >"$PKI/$n.ext"
  openssl x509 -req -in "$PKI/$n.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -days 3650 \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$PKI/$n.ext" -out "$PKI/$n.crt" 2>/dev/null
  rm -f "$PKI/$n.csr" "$PKI/$n.ext"
}

generate_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  if [ ! -s "$PKI/ca.crt" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -subj "/CN=dwbackup-local-cluster-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  fi
  issue apiserver kube-apiserver "" serverAuth \
    "IP:127.0.0.1,DNS:localhost,DNS:$NODE_NAME,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  issue apiserver-kubelet-client kube-apiserver-kubelet-client system:masters clientAuth
  issue admin kubernetes-admin system:masters clientAuth
  issue controller-manager system:kube-controller-manager "" clientAuth
  issue scheduler system:kube-scheduler "" clientAuth
  issue kubelet "system:node:$NODE_NAME" system:nodes clientAuth
  issue kubelet-serving "$NODE_NAME" "" serverAuth "IP:127.0.0.1,DNS:$NODE_NAME,DNS:localhost"
  if [ ! -s "$PKI/sa.key" ]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
}

# kubeconfig FILE CERTNAME: a kubeconfig for the API server on loopback with a client certificate.
kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: dwbackup-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$2.crt")
    client-key-data: $(base64 -w0 "$PKI/$2.key")
contexts:
- name: dwbackup-local
  context: {cluster: dwbackup-local, user: $2}
current-context: dwbackup-local
EOF
  chmod 600 "$1"
}

write_configs() {
  mkdir -p "$CONTAINERD_DIR"/{root,state,opt} "$CONTAINERD_DIR/certs.d/$LOCAL_REGISTRY" \
    "$LOCAL_CLUSTER_DIR"/{cni/net.d,etcd,registry/data,run/runc} "$KUBELET_DIR"/{root,pod-logs}
  kubeconfig "$KUBECONFIG_ADMIN" admin
  kubeconfig "$LOCAL_CLUSTER_DIR/controller-manager.kubeconfig" controller-manager
  kubeconfig "$LOCAL_CLUSTER_DIR/scheduler.kubeconfig" scheduler
  kubeconfig "$KUBELET_DIR/kubeconfig" kubelet
  write_registry_config
  write_containerd_config
  write_kubelet_config
}

write_registry_config() {
  cat >"$LOCAL_CLUSTER_DIR/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $LOCAL_CLUSTER_DIR/registry/data
  # The operator prunes old backups; distribution deletes nothing without this (docs/local-cluster.md).
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
EOF
}

write_containerd_config() {
  cat >"$CONTAINERD_DIR/config.toml" <<EOF
version = 2
root = "$CONTAINERD_DIR/root"
state = "$CONTAINERD_DIR/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CONTAINERD_DIR/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The VM lacks CAP_SYS_RESOURCE: without this every pod fails with "can't get final child's PID
  # from pipe: EOF" (runc cannot lower oom_score_adj).
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Keep network namespace mounts (non-hostNetwork pods) under our state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        # runc's state under our dir instead of /run/containerd/runc/k8s.io.
        Root = "$LOCAL_CLUSTER_DIR/run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$LOCAL_CLUSTER_DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$CONTAINERD_DIR/certs.d"
EOF
  cat >"$CONTAINERD_DIR/certs.d/$LOCAL_REGISTRY/hosts.toml" <<EOF
server = "http://$LOCAL_REGISTRY"
[host."http://$LOCAL_REGISTRY"]
  capabilities = ["pull", "resolve"]
EOF
  # Without any conflist the node stays NotReady; this one gives pods only "lo". containerd 1.6
  # notices a conflist when it is written, not when it is moved in, so write it in place.
  local conf=$LOCAL_CLUSTER_DIR/cni/net.d/10-loopback.conflist
  [ -s "$conf" ] || echo '{"cniVersion":"1.0.0","name":"lo-only","plugins":[{"type":"loopback"}]}' >"$conf"
}

write_kubelet_config() {
  cat >"$KUBELET_DIR/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
# Kubernetes 1.35+ refuses cgroup v1 unless told otherwise; this VM only has v1.
failCgroupV1: false
failSwapOn: false
# Else an image present under another name fails with ErrImageNeverPull.
imagePullCredentialsVerificationPolicy: NeverVerify
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
podLogsDir: $KUBELET_DIR/pod-logs
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
# A shared build machine fills its disk with Go caches: never evict test pods for that.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF
}

# save_host_state records, once per up/down cycle and before kubelet first runs, what kubelet
# changes on the host, so that down.sh can put it back.
save_host_state() {
  local s p t ipt
  if [ ! -e "$SAVED/sysctl.conf" ]; then
    for s in "${SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$SAVED/sysctl.conf.tmp"
    mv "$SAVED/sysctl.conf.tmp" "$SAVED/sysctl.conf"
  fi
  if [ ! -e "$SAVED/host-paths" ]; then
    for p in "${HOST_PATHS[@]}"; do [ -e "$p" ] || echo "$p"; done >"$SAVED/host-paths"
    # cgroup v1 has one hierarchy per controller, v2 a single one at the root.
    for p in /sys/fs/cgroup/ /sys/fs/cgroup/*/; do
      [ -e "${p}kubepods" ] || echo "${p}kubepods"
    done >"$SAVED/cgroups"
  fi
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle; do
      [ -e "$SAVED/$ipt.$t" ] || "$ipt" -w -t "$t" -S >"$SAVED/$ipt.$t" 2>/dev/null || true
    done
  done
}

start_registry() {
  pid_alive registry && return 0
  check_port registry "$REGISTRY_PORT"
  start_bg registry "$(command -v docker-registry)" serve "$LOCAL_CLUSTER_DIR/registry/config.yml"
  wait_for "the registry on $LOCAL_REGISTRY" 20 curl -fsS --max-time 2 "http://$LOCAL_REGISTRY/v2/"
}

start_etcd() {
  pid_alive etcd && return 0
  check_port etcd "$ETCD_PORT"
  check_port etcd-peer "$ETCD_PEER_PORT"
  # --unsafe-no-fsync: a throwaway test cluster, and fsync on a shared disk makes the API slow.
  start_bg etcd "$K8S_BIN/etcd" --name local --data-dir "$LOCAL_CLUSTER_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
  wait_for etcd 30 curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  pid_alive kube-apiserver && return 0
  check_port kube-apiserver "$APISERVER_PORT"
  start_bg kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-account-issuer "https://127.0.0.1:$APISERVER_PORT" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range 127.0.0.0/24 --endpoint-reconciler-type none \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --kubelet-preferred-address-types Hostname \
    --cert-dir "$LOCAL_CLUSTER_DIR/apiserver" --profiling=false
  wait_for "kube-apiserver /readyz" 90 tls_get "$APISERVER_PORT" /readyz
}

start_containerd() {
  pid_alive containerd && return 0
  [ ! -S "$CONTAINERD_SOCK" ] || rm -f "$CONTAINERD_SOCK" "$CONTAINERD_SOCK.ttrpc"
  start_bg containerd "$(command -v containerd)" --config "$CONTAINERD_DIR/config.toml" --log-level warn
  wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
}

# import_pause_image builds the sandbox image (hack/local-cluster/pause) once and imports it into
# containerd's k8s.io namespace under the name containerd's sandbox_image points at.
import_pause_image() {
  local tar=$LOCAL_CLUSTER_DIR/images/pause.tar
  if ctr --address "$CONTAINERD_SOCK" -n k8s.io images ls -q | grep -qxF "$PAUSE_IMAGE"; then
    return 0
  fi
  if [ ! -s "$tar" ]; then
    mkdir -p "$(dirname "$tar")"
    (cd "$REPO_ROOT" && go run ./hack/image --binary /pause=./hack/local-cluster/pause \
      --user 65535:65535 --tarball "$tar" --tag "$PAUSE_IMAGE" >/dev/null)
  fi
  ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$tar" >/dev/null
}

start_controller_manager() {
  pid_alive kube-controller-manager && return 0
  check_port kube-controller-manager "$KCM_PORT"
  local kc=$LOCAL_CLUSTER_DIR/controller-manager.kubeconfig
  start_bg kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$LOCAL_CLUSTER_DIR/controller-manager" \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --leader-elect=false
  wait_for kube-controller-manager 60 curl -fsSk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz"
}

start_scheduler() {
  pid_alive kube-scheduler && return 0
  check_port kube-scheduler "$SCHEDULER_PORT"
  local kc=$LOCAL_CLUSTER_DIR/scheduler.kubeconfig
  start_bg kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false
  wait_for kube-scheduler 60 curl -fsSk --max-time 2 "https://127.0.0.1:$SCHEDULER_PORT/healthz"
}

start_kubelet() {
  pid_alive kubelet && return 0
  check_port kubelet "$KUBELET_PORT"
  check_port kubelet-healthz "$KUBELET_HEALTHZ_PORT"
  KUBELET_STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  start_bg kubelet "$K8S_BIN/kubelet" --config "$KUBELET_DIR/config.yaml" \
    --kubeconfig "$KUBELET_DIR/kubeconfig" --root-dir "$KUBELET_DIR/root" \
    --hostname-override "$NODE_NAME" --v 1
  wait_for "kubelet /healthz" 60 curl -fsS --max-time 2 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
}

# node_ready: Ready, as reported by the kubelet running now (a warm start finds the previous run's
# Ready condition in etcd, so the heartbeat must be newer than this kubelet).
node_ready() {
  local ready
  ready=$(kctl get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}' 2>/dev/null) || return 1
  [ "${ready%% *}" = True ] || return 1
  [ -z "${KUBELET_STARTED:-}" ] || [[ ! "${ready#* }" < "$KUBELET_STARTED" ]]
}

wait_node_ready() {
  wait_for "node $NODE_NAME Ready (kubelet log: $LOGS/kubelet.log)" 120 node_ready
}

# self_test runs the pause image as a hostNetwork pod and removes it: proves that the scheduler,
# kubelet, containerd, runc and the sandbox image work together.
self_test() {
  local ns=default pod=local-cluster-self-test
  # The ServiceAccount admission refuses pods until the controller manager made "default".
  wait_for "service account default/default" 30 kctl -n "$ns" get serviceaccount default
  kctl -n "$ns" delete pod "$pod" --ignore-not-found --wait=true >/dev/null
  kctl -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $pod
spec:
  hostNetwork: true
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 2
  containers:
  - name: pause
    image: $PAUSE_IMAGE
    imagePullPolicy: IfNotPresent
    securityContext:
      runAsNonRoot: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
      seccompProfile: {type: RuntimeDefault}
EOF
  kctl -n "$ns" wait --for=jsonpath='{.status.phase}'=Running "pod/$pod" --timeout=90s >/dev/null ||
    die "self-test pod did not run: $(kctl -n "$ns" describe pod "$pod" | tail -n 15)"
  kctl -n "$ns" delete pod "$pod" --wait=true --timeout=60s >/dev/null
}

already_up() {
  local c
  for c in "${COMPONENTS[@]}"; do pid_alive "$c" || return 1; done
  node_ready
}

main() {
  preflight
  if already_up; then
    log "the cluster is already up: export KUBECONFIG=$KUBECONFIG_ADMIN"
    return 0
  fi
  start_binary_build
  step "apt packages" install_packages
  step "certificates" generate_pki
  step "configuration" write_configs
  step "registry on $LOCAL_REGISTRY" start_registry
  step "containerd" start_containerd
  step "pause image" import_pause_image
  step "Kubernetes $K8S_VERSION binaries" wait_binary_build
  step "etcd" start_etcd
  step "kube-apiserver on 127.0.0.1:$APISERVER_PORT" start_apiserver
  save_host_state
  step "kube-controller-manager" start_controller_manager
  step "kube-scheduler" start_scheduler
  step "kubelet" start_kubelet
  step "node $NODE_NAME Ready" wait_node_ready
  if [ "${LOCAL_CLUSTER_SKIP_SELF_TEST:-}" != 1 ]; then
    step "self-test pod (pause image, hostNetwork)" self_test
  fi
  log "cluster up in $(since "$_t0")s: export KUBECONFIG=$KUBECONFIG_ADMIN"
}

main "$@"
