-- R8: ANALYZE changes no schema object, so there is nothing to undo.
SELECT 'R8: nothing to revert' AS note;
