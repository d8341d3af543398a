/*
 * fingerprint.cpp: the session settings in a value's fingerprint (see
 * fingerprint.hpp). Backend-local caches only; plain C-style code.
 *
 * Custom settings are found by scanning PostgreSQL's table of settings
 * once, and again whenever that table changes: a setting added (its
 * length grows) or a placeholder replaced by the definition of a library
 * loaded later (the table's entry at that index is another one).
 */
#include "fingerprint.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "parser/parser.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/bytea.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"
#include "utils/pg_locale.h"
#include "utils/rls.h"
#include "utils/varlena.h"
}

namespace tusk {

namespace {

char *fingerprint_settings = nullptr; /* tusk.fingerprint_settings */

/* The custom settings: their index in the settings table and what was there. */
struct CustomSetting {
    int index;
    struct config_generic *setting;
};
CustomSetting *custom = nullptr; /* in TopMemoryContext */
int custom_count = 0;
int table_length = -1;

void find_custom_settings()
{
    struct config_generic **table = get_guc_variables();
    int n = GetNumConfigOptions();
    if (custom != nullptr)
        pfree(custom);
    custom = static_cast<CustomSetting *>(MemoryContextAlloc(TopMemoryContext, sizeof(CustomSetting) * (n + 1)));
    custom_count = 0;
    for (int i = 0; i < n; i++) {
        const char *name = table[i]->name;
        if (strchr(name, '.') != nullptr && strncmp(name, "tusk.", 5) != 0)
            custom[custom_count++] = CustomSetting{i, table[i]};
    }
    table_length = n;
}

bool custom_settings_changed()
{
    if (GetNumConfigOptions() != table_length)
        return true;
    struct config_generic **table = get_guc_variables();
    for (int i = 0; i < custom_count; i++)
        if (table[custom[i].index] != custom[i].setting)
            return true;
    return false;
}

void add_text(core::FingerprintBuilder &builder, const char *value)
{
    if (value == nullptr)
        builder.add_null();
    else
        builder.add(value, strlen(value));
}

void add_setting_by_name(core::FingerprintBuilder &builder, const char *name)
{
    add_text(builder, name);
    add_text(builder, GetConfigOption(name, true, false));
}

/* tusk.fingerprint_settings, split into names (in TopMemoryContext), again whenever it changes. */
List *listed_settings = NIL;
char *listed_source = nullptr;
char *listed_copy = nullptr;

List *listed_setting_names()
{
    const char *source = fingerprint_settings != nullptr ? fingerprint_settings : "";
    if (listed_source != nullptr && strcmp(listed_source, source) == 0)
        return listed_settings;
    MemoryContext previous = MemoryContextSwitchTo(TopMemoryContext);
    if (listed_source != nullptr)
        pfree(listed_source);
    if (listed_copy != nullptr)
        pfree(listed_copy);
    list_free(listed_settings);
    listed_source = pstrdup(source);
    char *copy = pstrdup(source);
    listed_copy = copy; /* the names point into it */
    List *names = NIL;
    if (!SplitIdentifierString(copy, ',', &names))
        names = NIL; /* the check hook refuses such a value; an old one just adds nothing */
    listed_settings = names;
    MemoryContextSwitchTo(previous);
    return listed_settings;
}

bool check_fingerprint_settings(char **newval, void **, GucSource)
{
    char *copy = pstrdup(*newval != nullptr ? *newval : "");
    List *names = NIL;
    bool ok = SplitIdentifierString(copy, ',', &names);
    list_free(names);
    pfree(copy);
    if (!ok)
        GUC_check_errdetail("List syntax is invalid: give setting names separated by commas.");
    return ok;
}

}  // namespace

void fingerprint_define_gucs()
{
    DefineCustomStringVariable("tusk.fingerprint_settings",
                               "Further settings whose values are part of a cached value's fingerprint.",
                               "A comma-separated list of setting names. Custom settings (names with a dot) "
                               "and the settings that change how values are read or rendered are always part of it.",
                               &fingerprint_settings, "", PGC_USERSET, GUC_LIST_INPUT, check_fingerprint_settings,
                               nullptr, nullptr);
}

void add_session_settings(core::FingerprintBuilder &builder)
{
    const char *path = namespace_search_path != nullptr ? namespace_search_path : "";
    builder.add(path, strlen(path));
    const char *zone = session_timezone != nullptr ? pg_get_timezone_name(session_timezone) : "";
    builder.add(zone, strlen(zone));
    const int values[8] = {DateStyle, DateOrder, IntervalStyle, standard_conforming_strings ? 1 : 0,
                           bytea_output, extra_float_digits, row_security ? 1 : 0, 0};
    builder.add(values, sizeof values);
    add_text(builder, locale_monetary);
    /* Under SET ROLE a policy may still read session_user. */
    Oid session_user = GetSessionUserId();
    if (session_user != GetUserId())
        add_text(builder, GetUserNameFromId(session_user, true));
    else
        builder.add_null();

    if (custom_settings_changed())
        find_custom_settings();
    for (int i = 0; i < custom_count; i++) {
        struct config_generic *setting = custom[i].setting;
        add_text(builder, setting->name);
        if (setting->vartype == PGC_STRING) {
            char **variable = reinterpret_cast<struct config_string *>(setting)->variable;
            add_text(builder, variable != nullptr ? *variable : nullptr);
        } else {
            add_text(builder, GetConfigOption(setting->name, true, false));
        }
    }
    ListCell *lc;
    foreach (lc, listed_setting_names())
        add_setting_by_name(builder, static_cast<const char *>(lfirst(lc)));
}

}  // namespace tusk
