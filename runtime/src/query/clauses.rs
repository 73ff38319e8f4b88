//! The clause layer the generated `where_*` / `order_by_*` methods call.
//!
//! A generated method is one line: it hands a typed field descriptor ([`Field`]) and the
//! caller's value to a provided method of [`Clauses`], which every [`QueryBuilder`]
//! implements. So the per-field code the derive emits stays a few lines, while the clause
//! construction (and its monomorphic closures) is written once here, generic over the
//! entity, the field's type and its marker.
//!
//! [`IntoValue`] is how a method takes its argument: the field's own type, or a borrowed
//! form of it (`&str` for a `String` field). It has a single blanket impl per target type
//! that an integer literal can match, so `where_qty_gt(5)` on a `u32` field infers `5u32`
//! (with `Into<u32>` it would default to `i32` and fail).

use std::any::Any;
use std::ops::Bound;

use super::fields::{
    ContainsField, EqField, IndexKey, OptionField, OrdField, OrderedKey, SortField,
};
use super::predicate::Cost;
use super::probe::MapKind;
use super::{Direction, IndexProbe, QueryBuilder, QueryCore};

/// A value a query method accepts for a field of type `F`: `F` itself, or for a `String`
/// field a `&str`, `&String`, `Box<str>` or `char`.
#[diagnostic::on_unimplemented(
    message = "a `{Self}` cannot be compared with a field of type `{F}`",
    label = "expected a `{F}` here",
    note = "pass a `{F}` (for a `String` field a `&str` works too; for an `Option` field write `Some(..)` or use `where_<field>_is_none()`)"
)]
pub trait IntoValue<F> {
    /// The value as the field's type.
    fn into_value(self) -> F;

    /// The value as a borrowed string, if it is one (`&str`, `&String`): an indexed
    /// equality on a `String` field then looks it up without copying it into a `String`.
    /// Not public API.
    #[doc(hidden)]
    #[inline]
    fn as_str_key(&self) -> Option<&str> {
        None
    }
}

#[diagnostic::do_not_recommend]
impl<F> IntoValue<F> for F {
    #[inline]
    fn into_value(self) -> F {
        self
    }
}

impl IntoValue<String> for &str {
    fn into_value(self) -> String {
        self.to_owned()
    }
    #[inline]
    fn as_str_key(&self) -> Option<&str> {
        Some(self)
    }
}

impl IntoValue<String> for &String {
    fn into_value(self) -> String {
        self.clone()
    }
    #[inline]
    fn as_str_key(&self) -> Option<&str> {
        Some(self)
    }
}

impl IntoValue<String> for Box<str> {
    fn into_value(self) -> String {
        self.into()
    }
}

impl IntoValue<String> for char {
    fn into_value(self) -> String {
        self.into()
    }
}

/// The argument of a generated `where_*_in` method: values for a field of type `F`.
pub trait Values<V>: IntoIterator<Item = V> {}

impl<V, I: IntoIterator<Item = V>> Values<V> for I {}

/// A field of the entity `E`, as a type: the derive implements it for each field's marker
/// type (named like the field, so diagnostics name the field too).
///
/// The accessor is an associated const, so it is known wherever a clause is monomorphized:
/// the clause's loop calls it directly (and inlines it) instead of through a function
/// pointer stored in the clause.
pub trait FieldOf<E, F>: 'static {
    /// Reads the field (of type `F`).
    const GET: fn(&E) -> &F;
}

/// The accessor of the field `M`, as a function item (zero-sized, so a clause's closure
/// holds no pointer and its loop calls the accessor directly).
#[inline(always)]
fn get<E, F, M: FieldOf<E, F>>(row: &E) -> &F {
    (M::GET)(row)
}

/// The accessor of the field `M` typed as a `String` one, if `F` is `String` (a type
/// comparison the compiler folds away).
#[inline(always)]
fn string_field<E: 'static, F: 'static, M: FieldOf<E, F>>() -> Option<fn(&E) -> &String> {
    (&M::GET as &dyn Any)
        .downcast_ref::<fn(&E) -> &String>()
        .copied()
}

/// Adds a clause to the plan of `builder`.
#[inline]
fn with<B: QueryBuilder>(
    builder: B,
    add: impl FnOnce(QueryCore<B::Entity>) -> QueryCore<B::Entity>,
) -> B {
    let (source, core) = builder.into_parts();
    B::from_parts(source, add(core))
}

/// The clause constructors behind the generated methods, for every builder.
///
/// Each bound names the builder's source `S`, so a generated method that forwards its own
/// bound is checked where it is called.
pub trait Clauses: QueryBuilder {
    /// `field == value`.
    fn eq<F, M>(self, _field: M, value: impl IntoValue<F>) -> Self
    where
        F: EqField<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        let value = value.into_value();
        with(self, |core| {
            core.eq::<M, Self::Source, F, _>(get::<Self::Entity, F, M>, value)
        })
    }

    /// `field != value`.
    fn ne<F, M>(self, _field: M, value: impl IntoValue<F>) -> Self
    where
        F: EqField<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        let value = value.into_value();
        with(self, |core| {
            core.ne::<M, Self::Source, F, _>(get::<Self::Entity, F, M>, value)
        })
    }

    /// `field` equals one of `values`.
    fn any_of<F, M, V>(self, _field: M, values: impl IntoIterator<Item = V>) -> Self
    where
        F: EqField<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
        V: IntoValue<F>,
    {
        let values = values.into_iter().map(IntoValue::into_value).collect();
        with(self, |core| {
            core.any_of::<M, Self::Source, F, _>(get::<Self::Entity, F, M>, values)
        })
    }

    /// Indexed `field == value` (the index at `slot`), answered from the index.
    #[inline]
    fn eq_indexed<F, M>(self, _field: M, slot: usize, value: impl IntoValue<F>) -> Self
    where
        F: IndexKey<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        if let (Some(key), Some(get)) = (value.as_str_key(), string_field::<Self::Entity, F, M>()) {
            let probe = IndexProbe::hash_lookup_str(slot, key, get);
            return with(self, |core| core.probed(probe, Cost::of::<String>()));
        }
        let value = value.into_value();
        if let Some(probe) = IndexProbe::int_lookup::<F, M>(slot, MapKind::Hash, &value) {
            return with(self, |core| core.probed(probe, Cost::Inline));
        }
        with(self, |core| {
            core.eq_indexed::<M, Self::Source, F, _>(get::<Self::Entity, F, M>, slot, value)
        })
    }

    /// Indexed `field` (the index at `slot`) equals one of `values`, answered from the index.
    fn any_of_indexed<F, M, V>(
        self,
        _field: M,
        slot: usize,
        values: impl IntoIterator<Item = V>,
    ) -> Self
    where
        F: IndexKey<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
        V: IntoValue<F>,
    {
        let values = values.into_iter().map(IntoValue::into_value).collect();
        with(self, |core| {
            core.any_of_indexed::<M, Self::Source, F, _>(get::<Self::Entity, F, M>, slot, values)
        })
    }

    /// `field == value` on a field with an ordered index (at `slot`), answered from it.
    fn eq_ordered<F, M>(self, _field: M, slot: usize, value: impl IntoValue<F>) -> Self
    where
        F: OrderedKey<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        if let (Some(key), Some(get)) = (value.as_str_key(), string_field::<Self::Entity, F, M>()) {
            let probe = IndexProbe::ordered_lookup_str(slot, key, get);
            return with(self, |core| core.probed(probe, Cost::of::<String>()));
        }
        let value = value.into_value();
        if let Some(probe) = IndexProbe::int_lookup::<F, M>(slot, MapKind::Ordered, &value) {
            return with(self, |core| core.probed(probe, Cost::Inline));
        }
        with(self, |core| {
            core.eq_ordered::<M, Self::Source, F, _>(get::<Self::Entity, F, M>, slot, value)
        })
    }

    /// `field` (with an ordered index at `slot`) equals one of `values`, from the index.
    fn any_of_ordered<F, M, V>(
        self,
        _field: M,
        slot: usize,
        values: impl IntoIterator<Item = V>,
    ) -> Self
    where
        F: OrderedKey<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
        V: IntoValue<F>,
    {
        let values = values.into_iter().map(IntoValue::into_value).collect();
        with(self, |core| {
            core.any_of_ordered::<M, Self::Source, F, _>(get::<Self::Entity, F, M>, slot, values)
        })
    }

    /// `field` (with an ordered index at `slot`) lies within the bounds.
    fn range_ordered<F, M>(self, _field: M, slot: usize, low: Bound<F>, high: Bound<F>) -> Self
    where
        F: OrderedKey<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        with(self, |core| {
            core.range_ordered::<M, Self::Source, F, _>(get::<Self::Entity, F, M>, slot, low, high)
        })
    }

    /// `field > value`, on a field with an ordered index at `slot`.
    fn gt_ordered<F, M>(self, field: M, slot: usize, value: impl IntoValue<F>) -> Self
    where
        F: OrderedKey<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        let low = Bound::Excluded(value.into_value());
        self.range_ordered(field, slot, low, Bound::Unbounded)
    }

    /// `field >= value`, on a field with an ordered index at `slot`.
    fn gte_ordered<F, M>(self, field: M, slot: usize, value: impl IntoValue<F>) -> Self
    where
        F: OrderedKey<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        let low = Bound::Included(value.into_value());
        self.range_ordered(field, slot, low, Bound::Unbounded)
    }

    /// `field < value`, on a field with an ordered index at `slot`.
    fn lt_ordered<F, M>(self, field: M, slot: usize, value: impl IntoValue<F>) -> Self
    where
        F: OrderedKey<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        let high = Bound::Excluded(value.into_value());
        self.range_ordered(field, slot, Bound::Unbounded, high)
    }

    /// `field <= value`, on a field with an ordered index at `slot`.
    fn lte_ordered<F, M>(self, field: M, slot: usize, value: impl IntoValue<F>) -> Self
    where
        F: OrderedKey<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        let high = Bound::Included(value.into_value());
        self.range_ordered(field, slot, Bound::Unbounded, high)
    }

    /// `low <= field <= high`, on a field with an ordered index at `slot`.
    fn between_ordered<F, M>(
        self,
        field: M,
        slot: usize,
        low: impl IntoValue<F>,
        high: impl IntoValue<F>,
    ) -> Self
    where
        F: OrderedKey<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        let (low, high) = (low.into_value(), high.into_value());
        self.range_ordered(field, slot, Bound::Included(low), Bound::Included(high))
    }

    /// `low < field` (`Excluded`), `low <= field` (`Included`), and so on, for both bounds.
    fn range<F, M>(self, _field: M, low: Bound<F>, high: Bound<F>) -> Self
    where
        F: OrdField<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        with(self, |core| {
            core.range::<M, Self::Source, F, _>(get::<Self::Entity, F, M>, low, high)
        })
    }

    /// `field > value`.
    fn gt<F, M>(self, _field: M, value: impl IntoValue<F>) -> Self
    where
        F: OrdField<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        let low = Bound::Excluded(value.into_value());
        self.range(_field, low, Bound::Unbounded)
    }

    /// `field >= value`.
    fn gte<F, M>(self, _field: M, value: impl IntoValue<F>) -> Self
    where
        F: OrdField<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        let low = Bound::Included(value.into_value());
        self.range(_field, low, Bound::Unbounded)
    }

    /// `field < value`.
    fn lt<F, M>(self, _field: M, value: impl IntoValue<F>) -> Self
    where
        F: OrdField<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        let high = Bound::Excluded(value.into_value());
        self.range(_field, Bound::Unbounded, high)
    }

    /// `field <= value`.
    fn lte<F, M>(self, _field: M, value: impl IntoValue<F>) -> Self
    where
        F: OrdField<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        let high = Bound::Included(value.into_value());
        self.range(_field, Bound::Unbounded, high)
    }

    /// `low <= field <= high`.
    fn between<F, M>(self, _field: M, low: impl IntoValue<F>, high: impl IntoValue<F>) -> Self
    where
        F: OrdField<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        let (low, high) = (low.into_value(), high.into_value());
        self.range(_field, Bound::Included(low), Bound::Included(high))
    }

    /// `field` (a `Vec`, set or `String`) contains `needle`.
    fn contains<F, M>(self, _field: M, needle: impl IntoValue<F::Needle>) -> Self
    where
        F: ContainsField<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        let needle = needle.into_value();
        with(self, |core| {
            core.contains::<M, Self::Source, F, _>(get::<Self::Entity, F, M>, needle)
        })
    }

    /// Indexed `Vec` field (the element index at `slot`) contains `needle`, answered from
    /// the index.
    fn contains_indexed<K, M>(self, _field: M, slot: usize, needle: impl IntoValue<K>) -> Self
    where
        K: IndexKey<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, Vec<K>>,
    {
        let needle = needle.into_value();
        with(self, |core| {
            core.contains_indexed::<M, Self::Source, K, _>(
                |row: &Self::Entity| M::GET(row).as_slice(),
                slot,
                needle,
            )
        })
    }

    /// `Option` field is `Some` (`some = true`) or `None`.
    fn some<F, M>(self, _field: M, some: bool) -> Self
    where
        F: OptionField<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        with(self, |core| {
            core.some::<M, Self::Source, F, _>(get::<Self::Entity, F, M>, some)
        })
    }

    /// Orders by `field`, after earlier orderings.
    fn order_by<F, M>(self, _field: M, direction: Direction) -> Self
    where
        F: SortField<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        with(self, |core| {
            core.order_by::<M, Self::Source, F, _>(get::<Self::Entity, F, M>, direction)
        })
    }

    /// Orders by a field with an ordered index (at `slot`), after earlier orderings.
    fn order_by_ordered<F, M>(self, _field: M, slot: usize, direction: Direction) -> Self
    where
        F: OrderedKey<Self::Entity, M, Self::Source>,
        M: FieldOf<Self::Entity, F>,
    {
        with(self, |core| {
            core.order_by_ordered::<M, Self::Source, F, _>(
                get::<Self::Entity, F, M>,
                slot,
                direction,
            )
        })
    }
}

impl<B: QueryBuilder> Clauses for B {}
