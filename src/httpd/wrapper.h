/* The httpd and APR declarations the module uses; build.rs runs bindgen on it. */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_main.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mmn.h>
#include <apr_optional.h>
#include <apr_pools.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <mod_rewrite.h>
#include <mod_watchdog.h>
#include <apr_shm.h>
#include <apr_optional_hooks.h>
#include <mod_status.h>
