# shellcheck shell=bash
# Certificates and kubeconfigs of the offline cluster, made with openssl (sourced by
# up.sh after lib.sh). Every file is made once and kept, so a restarted cluster keeps
# its identity and the kubeconfigs handed out stay valid; down.sh --purge removes them.
#
# Layout under $CLUSTER_STATE/pki: ca.{crt,key} signs every component's certificate;
# front-proxy-ca.{crt,key} signs the one client certificate the API server presents to
# aggregated APIs (metrics-server), as the aggregation layer requires a second CA;
# sa.{key,pub} signs service account tokens.

PKI=$CLUSTER_STATE/pki
CERT_DAYS=3650

new_ca() {
    local name=$1 subject=$2
    [[ -s "$PKI/$name.crt" ]] && return
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$CERT_DAYS" \
        -subj "$subject" -keyout "$PKI/$name.key" -out "$PKI/$name.crt" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
}

# new_cert NAME CA SUBJECT USAGE [SAN]: USAGE is serverAuth, clientAuth or both.
new_cert() {
    local name=$1 ca=$2 subject=$3 usage=$4 san=${5:-}
    [[ -s "$PKI/$name.crt" ]] && return
    local ext
    ext=$(mktemp)
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$usage"
        [[ -z "$san" ]] || echo "subjectAltName=$san"
    } >"$ext"
    openssl req -newkey rsa:2048 -nodes -sha256 -subj "$subject" \
        -keyout "$PKI/$name.key" -out "$PKI/$name.csr" 2>/dev/null
    openssl x509 -req -sha256 -days "$CERT_DAYS" -in "$PKI/$name.csr" \
        -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
        -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
    rm -f "$ext" "$PKI/$name.csr"
}

# new_kubeconfig NAME CERT: a kubeconfig that authenticates with pki/CERT.{crt,key}.
new_kubeconfig() {
    local name=$1 cert=$2 file=$CLUSTER_STATE/$1.kubeconfig
    [[ -s "$file" ]] && return
    # Certificates are embedded, so the file alone is enough (e.g. copied elsewhere).
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: sales-forecast
    cluster:
      server: https://$NODE_IP:$APISERVER_PORT
      certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
  - name: $name
    user:
      client-certificate-data: $(base64 -w0 "$PKI/$cert.crt")
      client-key-data: $(base64 -w0 "$PKI/$cert.key")
contexts:
  - name: sales-forecast
    context:
      cluster: sales-forecast
      user: $name
current-context: sales-forecast
EOF
    chmod 600 "$file"
}

make_pki() {
    mkdir -p "$PKI"
    chmod 700 "$PKI"
    new_ca ca "/CN=sales-forecast-cluster-ca"
    new_ca front-proxy-ca "/CN=sales-forecast-front-proxy-ca"
    if [[ ! -s "$PKI/sa.key" ]]; then
        openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
        openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
    fi

    # Every name and address a client may use for the API server: the bridge address,
    # loopback, and the in-cluster "kubernetes" Service.
    local names="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
    names+=",DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost"
    names+=",IP:$NODE_IP,IP:127.0.0.1,IP:$KUBERNETES_SERVICE_IP"
    new_cert apiserver ca "/CN=kube-apiserver" serverAuth "$names"
    new_cert apiserver-kubelet-client ca \
        "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
    new_cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
    new_cert kubelet ca "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,IP:$NODE_IP"

    # The user names and groups below are the ones the API server's default RBAC
    # bindings and the Node authorizer expect for each component.
    new_cert admin ca "/O=system:masters/CN=kubernetes-admin" clientAuth
    new_cert controller-manager ca "/CN=system:kube-controller-manager" clientAuth
    new_cert scheduler ca "/CN=system:kube-scheduler" clientAuth
    new_cert kubelet-client ca "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
    new_cert kube-proxy ca "/CN=system:kube-proxy" clientAuth

    new_kubeconfig admin admin
    new_kubeconfig controller-manager controller-manager
    new_kubeconfig scheduler scheduler
    new_kubeconfig kubelet kubelet-client
    new_kubeconfig kube-proxy kube-proxy
}
