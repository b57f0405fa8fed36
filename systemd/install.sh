#!/usr/bin/env bash
# Installs vigil from this source tree onto this machine, under systemd (the Debian package,
# packaging/build-deb, is the other way; do not mix the two).
#   sudo systemd/install.sh              build as you (not root), install, enable, (re)start
#   sudo systemd/install.sh --no-build   install what `cargo build --release --workspace`
#                                        left in target/release
#   systemd/install.sh --list            print the binaries and plugins it installs, and where
#   sudo systemd/install.sh --uninstall [--purge]
#                                        stop, disable and remove what this script installed;
#                                        the config, policies, state and group "vigil" stay
#                                        unless --purge (which leaves only the group)
# Layout: the Debian package's. The binaries and plugins are the ones its asset list in
# Cargo.toml ([package.metadata.deb]) names from target/release, installed where it puts them
# (/usr/sbin/vigild, /usr/bin/vigil, the six standard plugins in /usr/lib/vigil/plugins),
# stripped; man pages and bash/zsh/fish completions under /usr/share, the unit in
# /etc/systemd/system, /etc/vigil/config.toml (from packaging/production-config) and
# /etc/vigil/policies, group "vigil" for the control socket.
#
# The config and the policies are treated like dpkg conffiles: a file you have not edited is
# upgraded; one you have edited is kept, and when the shipped version changed it is put
# beside yours as FILE.dist. The checksums of what was shipped are kept in
# /usr/lib/vigil/shipped.sha256.
set -euo pipefail
cd "$(dirname "$0")/.."

build=yes uninstall=no purge=no list=no
for arg in "$@"; do
  case "$arg" in
    --no-build) build=no ;;
    --list) list=yes ;;
    --uninstall) uninstall=yes ;;
    --purge) purge=yes ;;
    *) echo "usage: $0 [--no-build | --list | --uninstall [--purge]]" >&2; exit 64 ;;
  esac
done
[ "$purge" = no ] || [ "$uninstall" = yes ] || { echo "install.sh: --purge goes with --uninstall" >&2; exit 64; }

# "NAME DEST MODE" for each binary and plugin: the package's asset lines
#   ["target/release/NAME", "DEST", "MODE"],
# so that one more binary is one more line there. (Generated files under dist/ are made below.)
mapfile -t BUILT < <(sed -n 's|^ *\["target/release/\([^"/*]*\)", "\([^"]*\)", "\([0-7]*\)"\],.*|\1 \2 \3|p' Cargo.toml)
[ ${#BUILT[@]} -ge 2 ] || { echo "install.sh: no binaries in Cargo.toml's [package.metadata.deb] assets" >&2; exit 1; }
# dest NAME DIR: where an asset goes (DIR ending in / keeps the name).
dest() { case "$2" in */) echo "/$2$1" ;; *) echo "/$2" ;; esac; }
if [ "$list" = yes ]; then
  for asset in "${BUILT[@]}"; do
    read -r name dir mode <<<"$asset"
    echo "$name $(dest "$name" "$dir") $mode"
  done
  exit 0
fi

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo $0)" >&2; exit 1; }
if dpkg-query -W -f='${Status}' vigil 2>/dev/null | grep -q ' installed$'; then
  echo "install.sh: the Debian package vigil is installed; use apt to change it" >&2
  exit 1
fi

LIB=/usr/lib/vigil
SHIPPED=$LIB/shipped.sha256
UNIT=/etc/systemd/system/vigild.service
MAN=/usr/share/man
COMPLETIONS=(/usr/share/bash-completion/completions/vigil /usr/share/bash-completion/completions/vigild
             /usr/share/zsh/vendor-completions/_vigil /usr/share/zsh/vendor-completions/_vigild
             /usr/share/fish/vendor_completions.d/vigil.fish /usr/share/fish/vendor_completions.d/vigild.fish)
systemd_running() { [ -d /run/systemd/system ]; }

if [ "$uninstall" = yes ]; then
  if systemd_running && [ -e "$UNIT" ]; then
    systemctl disable --now vigild.service || true
  fi
  for asset in "${BUILT[@]}"; do
    read -r name dir _ <<<"$asset"
    rm -f "$(dest "$name" "$dir")"
  done
  rm -f "$UNIT" /usr/bin/vigild "${COMPLETIONS[@]}"
  rm -f "$MAN"/man1/vigil.1* "$MAN"/man1/vigil-*.1* "$MAN"/man8/vigild.8* "$MAN"/man8/vigild-*.8* \
        "$MAN"/man5/vigil.toml.5*
  rm -rf "$LIB"
  systemd_running && systemctl daemon-reload
  if [ "$purge" = yes ]; then
    rm -rf /etc/vigil /var/lib/vigil /run/vigil
    echo "vigil removed with its config and state; the group 'vigil' stays (groupdel vigil)"
  else
    echo "vigil removed; kept /etc/vigil and /var/lib/vigil and the group 'vigil' (--purge removes the first two)"
  fi
  exit 0
fi

target=${CARGO_TARGET_DIR:-$PWD/target}
if [ "$build" = yes ]; then
  # Build as the user who ran sudo, with their toolchain, into their target directory; root's
  # PATH rarely has cargo, and a root-owned target/ would break that user's next build.
  if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    sudo -u "$SUDO_USER" -H bash -lc 'cd "$1" && PATH="$HOME/.cargo/bin:$PATH" cargo build --release --workspace' \
      bash "$PWD" || { echo "install.sh: the build as $SUDO_USER failed (or build first and use --no-build)" >&2; exit 1; }
  elif command -v cargo >/dev/null; then
    cargo build --release --workspace
  else
    echo "install.sh: no cargo for root: build first (cargo build --release --workspace) and run with --no-build" >&2
    exit 1
  fi
fi
rel=$target/release
for asset in "${BUILT[@]}" "vigil-dist"; do
  read -r name _ <<<"$asset"
  [ -f "$rel/$name" ] || { echo "install.sh: $rel/$name was not built (cargo build --release --workspace)" >&2; exit 1; }
done

# Binaries and plugins, stripped (the unstripped ones with their debug info stay in target/).
install -d -m 0755 /etc/vigil /etc/vigil/policies
for asset in "${BUILT[@]}"; do
  read -r name dir mode <<<"$asset"
  to=$(dest "$name" "$dir")
  install -d -m 0755 "$(dirname "$to")"
  install -m "$mode" -o root -g root "$rel/$name" "$to"
  case "$name" in
    *.so) strip --strip-unneeded "$to" ;; # keeps the dynamic symbols dlopen needs
    *) strip "$to" ;;
  esac
done
rm -f /usr/bin/vigild # where install.sh put it before vigild moved to /usr/sbin

# Man pages and completions, generated as for the package.
dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
packaging/production-config > "$dist/config.toml"
"$rel/vigil-dist" --config "$dist/config.toml" "$dist" >/dev/null
for s in 1 5 8; do
  install -d -m 0755 "$MAN/man$s"
  for page in "$dist"/man/*."$s"; do
    gzip -9n < "$page" > "$MAN/man$s/$(basename "$page").gz"
    chmod 0644 "$MAN/man$s/$(basename "$page").gz"
  done
done
for c in "${COMPLETIONS[@]}"; do
  case "$c" in
    */bash-completion/*) src="$dist/completions/bash/$(basename "$c")" ;;
    */zsh/*) src="$dist/completions/zsh/$(basename "$c")" ;;
    *) src="$dist/completions/fish/$(basename "$c")" ;;
  esac
  install -D -m 0644 "$src" "$c"
done

# conffile NEW DEST MODE: dpkg's rule for a config file (see the header).
touch "$SHIPPED"
conffile() {
  local new=$1 dest=$2 mode=$3 new_sum old_sum shipped_sum
  new_sum=$(sha256sum < "$new" | cut -d' ' -f1)
  shipped_sum=$(awk -v f="$dest" '$2 == f { print $1 }' "$SHIPPED")
  if [ ! -e "$dest" ]; then
    install -m "$mode" "$new" "$dest"
  else
    old_sum=$(sha256sum < "$dest" | cut -d' ' -f1)
    if [ "$old_sum" != "$new_sum" ]; then
      if [ "$old_sum" = "$shipped_sum" ]; then
        install -m "$mode" "$new" "$dest" # not edited here: upgrade it
      elif [ "$new_sum" != "$shipped_sum" ]; then
        install -m "$mode" "$new" "$dest.dist"
        echo "install.sh: kept your $dest; the new version is $dest.dist"
      fi
    fi
  fi
  awk -v f="$dest" '$2 != f' "$SHIPPED" > "$SHIPPED.new"
  echo "$new_sum $dest" >> "$SHIPPED.new"
  mv "$SHIPPED.new" "$SHIPPED"
}
conffile "$dist/config.toml" /etc/vigil/config.toml 0640
for p in policies/*.toml; do
  [ -e "$p" ] && conffile "$p" "/etc/vigil/policies/$(basename "$p")" 0644
done

getent group vigil >/dev/null || groupadd --system vigil
install -m 0644 systemd/vigild.service "$UNIT"
/usr/sbin/vigild --check-config /etc/vigil/config.toml
if systemd_running; then
  systemctl daemon-reload
  systemctl enable vigild.service
  # restart, not enable --now: an upgrade must replace the running binary.
  systemctl restart vigild.service
  echo "vigild installed and (re)started; add administrators to the 'vigil' group and as [[user]] in /etc/vigil/config.toml"
else
  echo "vigild installed; systemd is not running here, so start it yourself: /usr/sbin/vigild --config /etc/vigil/config.toml"
fi
