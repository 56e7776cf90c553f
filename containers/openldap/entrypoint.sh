#!/bin/sh
# pyha's OpenLDAP: on first start write cn=config (pyha's schema, one mdb database for
# dc=pyha,dc=test) and add the base tree; then run slapd in the foreground as this user.
#
# LDAP_DATA_DIR       where cn=config, the database and a generated password live
# LDAP_SCHEMA_DIR     holds pyha-schema.ldif and base-tree.ldif
# LDAP_PORT           port to listen on (default 1389: no root needed)
# LDAP_LISTEN_HOST    address to listen on (default: every address)
# LDAP_BASE_TREE      full: jndi/base-tree.ldif; suffix: only the dc=pyha,dc=test entry
# LDAP_ADMIN_PASSWORD_FILE, LDAP_ADMIN_PASSWORD
#                     the password of cn=admin,dc=pyha,dc=test (first start only); without
#                     either, a random one is written to $LDAP_DATA_DIR/admin.password
# LDAP_NOSYNC         1: no fsync per write (tests only)
set -eu

DATA=${LDAP_DATA_DIR:-/var/lib/pyha-ldap}
SCHEMA=${LDAP_SCHEMA_DIR:-/etc/pyha-ldap}
PORT=${LDAP_PORT:-1389}
HOST=${LDAP_LISTEN_HOST:-}
STOCK=${LDAP_STOCK_SCHEMA_DIR:-/etc/ldap/schema}
MODULES=${LDAP_MODULE_DIR:-/usr/lib/ldap}
SBIN=${LDAP_SBIN:-/usr/sbin}
SUFFIX="dc=pyha,dc=test"
ADMIN="cn=admin,$SUFFIX"

say() { echo "pyha-ldap: $*" >&2; }

# The clear password goes to a 0600 file only; slappasswd reads it from there (-T), so
# it never appears on a command line.
password_file() {
    out="$DATA/.admin.password.tmp"
    if [ -n "${LDAP_ADMIN_PASSWORD_FILE:-}" ]; then
        tr -d '\r\n' < "$LDAP_ADMIN_PASSWORD_FILE" > "$out"
    elif [ -n "${LDAP_ADMIN_PASSWORD:-}" ]; then
        printf '%s' "$LDAP_ADMIN_PASSWORD" > "$out"
    else
        head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DATA/admin.password"
        cp "$DATA/admin.password" "$out"
        say "generated the admin password: $DATA/admin.password"
    fi
    echo "$out"
}

config_ldif() {
    hash=$1
    nosync=""
    [ "${LDAP_NOSYNC:-0}" = 1 ] && nosync="olcDbNoSync: TRUE"
    cat <<LDIF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $DATA/slapd.pid
olcArgsFile: $DATA/slapd.args
olcLogLevel: ${LDAP_LOG_LEVEL:-none}

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: $MODULES
olcModuleLoad: back_mdb
olcModuleLoad: syncprov

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://$STOCK/core.ldif

include: file://$STOCK/cosine.ldif

include: file://$STOCK/inetorgperson.ldif

include: file://$SCHEMA/pyha-schema.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: unlimited

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcRootDN: cn=admin,cn=config

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $SUFFIX
olcDbDirectory: $DATA/db
olcDbMaxSize: 1073741824
olcRootDN: $ADMIN
olcRootPW: $hash
olcDbIndex: objectClass eq
olcDbIndex: cn eq
olcDbIndex: pyhaType,pyhaNodeName,pyhaGroupName eq
olcDbIndex: entryCSN,entryUUID eq
olcAccess: to * by dn.exact="$ADMIN" manage by users read by * auth
olcLimits: dn.exact="$ADMIN" size=unlimited time=unlimited
$nosync

dn: olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {0}syncprov
olcSpCheckpoint: 100 1
olcSpSessionlog: 10000
LDIF
}

suffix_ldif() {
    printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: pyha\no: pyha\n' \
        "$SUFFIX"
}

initialize() {
    umask 077
    rm -rf "$DATA/slapd.d" "$DATA/db"
    mkdir -p "$DATA/slapd.d" "$DATA/db"
    clear=$(password_file)
    hash=$("$SBIN/slappasswd" -T "$clear")
    rm -f "$clear"
    config_ldif "$hash" > "$DATA/config.ldif"
    "$SBIN/slapadd" -n0 -F "$DATA/slapd.d" -l "$DATA/config.ldif"
    rm -f "$DATA/config.ldif"
    case "${LDAP_BASE_TREE:-full}" in
        # slapadd takes no "version:" line after comments: keep only the entries.
        full) tree="$DATA/base-tree.ldif"
              sed -e '/^#/d' -e '/^version:/d' "$SCHEMA/base-tree.ldif" > "$tree" ;;
        suffix) tree="$DATA/suffix.ldif"; suffix_ldif > "$tree" ;;
        *) say "LDAP_BASE_TREE must be full or suffix, not ${LDAP_BASE_TREE}"; exit 2 ;;
    esac
    "$SBIN/slapadd" -F "$DATA/slapd.d" -b "$SUFFIX" -l "$tree"
    rm -f "$tree"
    touch "$DATA/.initialized"
    say "initialized $SUFFIX in $DATA (schema: $SCHEMA/pyha-schema.ldif)"
}

[ -f "$DATA/.initialized" ] || initialize
unset LDAP_ADMIN_PASSWORD
exec "$SBIN/slapd" -d "${LDAP_DEBUG:-none}" -F "$DATA/slapd.d" -h "ldap://$HOST:$PORT/"
