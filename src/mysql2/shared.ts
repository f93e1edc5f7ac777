/**
 * mysql2's own helpers, the same objects in `mysql2` and `mysql2/promise`,
 * re-exported unchanged by both of rollback-pool's module faces: escaping and
 * formatting (no connection involved), the type and charset tables, the
 * parser cache controls.
 */
import * as mysql2 from 'mysql2';

/** Escapes a value for SQL (mysql2's `escape`). */
export const escape: typeof mysql2.escape = mysql2.escape;
/** Escapes an identifier (mysql2's `escapeId`). */
export const escapeId: typeof mysql2.escapeId = mysql2.escapeId;
/** Formats SQL with values (mysql2's `format`). */
export const format: typeof mysql2.format = mysql2.format;
/** Marks SQL to be inserted as is by `format` and placeholders (mysql2's `raw`). */
export const raw: typeof mysql2.raw = mysql2.raw;
/** Column type codes and names (mysql2's `Types`). */
export const Types: typeof mysql2.Types = mysql2.Types;
/** Typed bind parameters (mysql2's `TypedParameter`). */
export const TypedParameter: typeof mysql2.TypedParameter = mysql2.TypedParameter;
/** Character set ids (mysql2's `Charsets`). */
export const Charsets: typeof mysql2.Charsets = mysql2.Charsets;
/** Character set id to Node encoding (mysql2's `CharsetToEncoding`). */
export const CharsetToEncoding: typeof mysql2.CharsetToEncoding = mysql2.CharsetToEncoding;
/** Sets how many row parsers mysql2 keeps (mysql2's `setMaxParserCache`). */
export const setMaxParserCache: typeof mysql2.setMaxParserCache = mysql2.setMaxParserCache;
/** Empties mysql2's row parser cache (mysql2's `clearParserCache`). */
export const clearParserCache: typeof mysql2.clearParserCache = mysql2.clearParserCache;
