/**
 * English messages for tsbox's schemas. zod/mini, unlike zod classic, sets no
 * locale, and every issue would read "Invalid input"; English is set here unless
 * the application has chosen a locale, which is what zod classic does on its
 * first schema. Imported for its effect by every module that holds a schema.
 */
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

if (!config().localeError) config(en());
