# Shared by the .ci/fetch-* scripts: fetch one binary out of a pinned Debian package, without installing it, and
# cache it under <repo>/.cache. Source this file after setting:
#
#   TOOL         the calling script's name, for messages (fetch-consul)
#   PACKAGE      the Debian package (consul)
#   DEB_VERSION  its exact version (1.8.7+dfsg1-2+b3)
#   DEB_SHA256   the sha256 of that .deb, checked before anything is extracted
#   SUITE        the Debian suite that carries it (bullseye)
#   MEMBER       the file to take out of the package (usr/bin/consul)
#   BIN          where to put it
#   MIRROR_VAR   the name of the environment variable that overrides the mirror (CONSUL_DEBIAN_MIRROR)
#   BIN_VAR      the name of the variable the tests read instead, so the fetch can be skipped (CONSUL_BIN)
#
# and defining `is_wanted FILE` (true when FILE is the wanted binary) and `describe FILE` (one line saying what
# FILE is). Then `fetch_debian_binary "$@"` prints BIN's path on stdout (progress goes to stderr); with
# `--print-mirror` it prints the Debian mirror it would use and fetches nothing.
#
# Why this way (see shared/docs/consul-api.md §1.1): the only registries this project's machines reach are the
# package registries, so the binary comes from Debian's own package. apt runs with a private configuration (own
# sources list, own lists and cache folders in a temp dir), so /etc/apt and the system's package lists are left
# untouched. The mirror is read from this machine's apt sources rather than written here, so the repo names no
# registry host.
#
# Environment: $MIRROR_VAR as above; FETCH_APT_ETC (or FETCH_CONSUL_APT_ETC) reads the apt sources from this
# folder instead of /etc/apt (for testing the parser).

readonly KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

step() { printf '%s: %s\n' "$TOOL" "$*" >&2; }

# Fails with what went wrong (first argument) and what to do about it (the rest, one line each).
die() {
	printf '%s: FAILED: %s\n' "$TOOL" "$1" >&2
	shift
	local line
	for line in "$@"; do printf '%s:   %s\n' "$TOOL" "$line" >&2; done
	printf '%s:   (or set %s to the binary for the tests and skip this script)\n' "$TOOL" "$BIN_VAR" >&2
	exit 1
}

# Prints the main Debian archive URL found in this machine's apt sources (deb822 *.sources files and one-line
# sources.list / *.list files). An entry counts as Debian's when its URL path has a `debian` component (a mirror,
# a snapshot, or a caching proxy's path) or it is signed by Debian's archive keyring; the security archive is
# skipped because it does not carry the package (only -security suites live there).
find_mirror() {
	local etc=${FETCH_APT_ETC:-${FETCH_CONSUL_APT_ETC:-/etc/apt}} files=() f
	for f in "$etc"/sources.list.d/*.sources; do [ -f "$f" ] && files+=("$f"); done
	[ -f "$etc/sources.list" ] && files+=("$etc/sources.list")
	for f in "$etc"/sources.list.d/*.list; do [ -f "$f" ] && files+=("$f"); done
	[ ${#files[@]} -gt 0 ] || return 1
	awk '
		function consider(types, uri, suites, signed, enabled,   ok, n, i, s, plain) {
			if (enabled ~ /^[Nn]o$/ || uri == "") return
			n = split(types, t, /[ \t]+/); ok = 0
			for (i = 1; i <= n; i++) if (t[i] == "deb") ok = 1
			if (!ok) return
			if (uri ~ /security/) return
			n = split(suites, s, /[ \t]+/); plain = 0
			for (i = 1; i <= n; i++) if (s[i] != "" && s[i] !~ /-security$/) plain = 1
			if (!plain) return
			sub(/\/+$/, "", uri)
			if (uri ~ /^[a-z+]+:\/\/[^\/]+\/(.*\/)?debian(\/|$)/ || signed ~ /debian-archive-keyring/) { if (found == "") found = uri }
		}
		function flush() { consider(types, uri, suites, signed, enabled); types = uri = suites = signed = enabled = "" }
		FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
		deb822 {
			if ($0 ~ /^[ \t]*$/) { flush(); next }
			if ($0 ~ /^[ \t]*#/) next
			key = tolower($1); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
			if (key == "types:") types = val
			else if (key == "uris:") { split(val, u, /[ \t]+/); uri = u[1] }
			else if (key == "suites:") suites = val
			else if (key == "signed-by:") signed = val
			else if (key == "enabled:") enabled = val
			next
		}
		{
			line = $0; sub(/#.*/, "", line)
			if (line !~ /^[ \t]*deb[ \t]/) next
			opts = ""
			if (match(line, /\[[^]]*\]/)) { opts = substr(line, RSTART, RLENGTH); line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH) }
			n = split(line, w, /[ \t]+/)
			j = (w[1] == "") ? 2 : 1
			consider(w[j], w[j + 1], w[j + 2], opts, "")
		}
		END { flush(); if (found == "") exit 1; print found }
	' "${files[@]}"
}

# Fetches, checks and caches BIN (see the top of this file), unless the cached one is already the wanted one.
fetch_debian_binary() {
	if [ "${1:-}" = "--print-mirror" ]; then
		# For checking the parser on a machine's sources without fetching anything.
		find_mirror || die "no Debian archive entry in the apt sources" "see find_mirror in .ci/lib/debian-binary.sh"
		return 0
	fi
	if is_wanted "$BIN"; then
		step "cached $(describe "$BIN") is present"
		printf '%s\n' "$BIN"
		return 0
	fi

	local tool
	for tool in apt-get dpkg sha256sum awk; do
		command -v "$tool" >/dev/null 2>&1 ||
			die "'$tool' is not installed" "this script needs a Debian-based machine with apt and dpkg"
	done
	[ -r "$KEYRING" ] || die "$KEYRING is missing" "install it: apt-get install debian-archive-keyring"

	step "reading the Debian mirror from this machine's apt sources"
	local mirror override=${!MIRROR_VAR:-}
	if [ -n "$override" ]; then
		mirror=${override%/}
		step "  using $MIRROR_VAR=$mirror"
	else
		mirror=$(find_mirror) ||
			die "found no Debian archive entry in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources" \
				"add the Debian archive to the apt sources, or set $MIRROR_VAR to its URL"
		step "  mirror: $mirror"
	fi

	# Global, for the EXIT trap.
	W=$(mktemp -d "${TMPDIR:-/tmp}/$TOOL.XXXXXX")
	trap 'rm -rf "$W"' EXIT
	mkdir -p "$W/lists/partial" "$W/cache/archives/partial" "$W/root"
	echo "deb [signed-by=$KEYRING] $mirror $SUITE main" >"$W/sources.list"
	# The machine's apt.conf.d is still read (it may hold proxy or snapshot settings this machine needs); this file,
	# read last, points every folder apt writes at the temp dir and drops the system's post-update hooks, which would
	# otherwise act on the system's caches.
	printf '%s\n' \
		"Dir::Etc::SourceList \"$W/sources.list\";" \
		'Dir::Etc::SourceParts "/dev/null";' \
		'Dir::Etc::Preferences "/dev/null";' \
		'Dir::Etc::PreferencesParts "/dev/null";' \
		"Dir::State::Lists \"$W/lists\";" \
		"Dir::Cache \"$W/cache\";" \
		'Dir::Cache::pkgcache "";' \
		'Dir::Cache::srcpkgcache "";' \
		'APT::Sandbox::User "root";' \
		'Acquire::Languages "none";' \
		'#clear APT::Update::Post-Invoke;' \
		'#clear APT::Update::Post-Invoke-Success;' >"$W/apt.conf"
	apt() { apt-get -c "$W/apt.conf" -q "$@"; }

	step "downloading the $SUITE package index (private apt lists in $W)"
	apt --error-on=any update >"$W/update.log" 2>&1 || {
		sed 's/^/    /' "$W/update.log" >&2
		die "apt-get update of '$mirror $SUITE main' failed" \
			"if the log says the repository has no Release file, the mirror no longer carries $SUITE" \
			"(Debian moves old releases to its archive host): point $MIRROR_VAR at a mirror or" \
			"snapshot that still has $SUITE, or get the binary some other way and set $BIN_VAR"
	}

	step "downloading $PACKAGE=$DEB_VERSION"
	(cd "$W" && apt download "$PACKAGE=$DEB_VERSION") >"$W/download.log" 2>&1 || {
		sed 's/^/    /' "$W/download.log" >&2
		die "apt-get download $PACKAGE=$DEB_VERSION from '$mirror $SUITE' failed" \
			"check that $SUITE/main still lists that version: apt-cache policy $PACKAGE with the same sources" \
			"if Debian rebuilt or updated it, update DEB_VERSION and DEB_SHA256 in .ci/$TOOL after checking the new .deb"
	}
	local debs=("$W/$PACKAGE"_*.deb)
	[ -f "${debs[0]}" ] ||
		die "apt-get download reported success but left no ${PACKAGE}_*.deb in $W" \
			"rerun; if it persists, run the apt-get download by hand"
	local deb=${debs[0]} actual
	step "checking sha256 of $(basename "$deb")"
	actual=$(sha256sum "$deb" | awk '{print $1}')
	[ "$actual" = "$DEB_SHA256" ] ||
		die "sha256 mismatch for $(basename "$deb"): got $actual, expected $DEB_SHA256" \
			"the mirror served a different build than the one this project pinned; do not use it unreviewed"

	step "extracting $MEMBER to $BIN"
	dpkg -x "$deb" "$W/root" || die "dpkg -x $(basename "$deb") failed" "check free disk space in ${TMPDIR:-/tmp}"
	[ -f "$W/root/$MEMBER" ] || die "the package has no $MEMBER" "inspect it with dpkg -c"
	mkdir -p "$(dirname "$BIN")"
	# Copy then rename, so a concurrent run or test never sees a half-written binary.
	cp "$W/root/$MEMBER" "$BIN.tmp.$$"
	chmod 0755 "$BIN.tmp.$$"
	mv -f "$BIN.tmp.$$" "$BIN"

	step "verifying the binary"
	is_wanted "$BIN" ||
		die "$BIN is not the wanted binary (it says: $(describe "$BIN"))" "delete $(dirname "$BIN") and rerun"
	step "ok: $(describe "$BIN")"
	printf '%s\n' "$BIN"
}
